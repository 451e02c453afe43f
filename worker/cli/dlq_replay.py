"""`renewals dlq replay`: a replay operation over the records, throttled, with progress on a
terminal, cancelled cleanly by Ctrl-C, resumed by `--resume OP_ID`."""

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from worker import logs
from worker.cli.core import broker_of, load_settings
from worker.cli.dlq_options import (
    Rate,
    dead_letter_records,
    everything_option,
    matching,
    require_choice,
    scheduled_for,
    selection_options,
    to_original_option,
)
from worker.cli.dlq_output import Progress, print_plans, print_report, print_scheduled
from worker.dead_letters import (
    DEFAULT_MAX_REPLAYS,
    DeadLetterError,
    InvalidRate,
    ReplayPublisher,
    Report,
    Routes,
    actions,
    as_dead_letter,
    audit,
    cut,
    label,
    plan,
    run,
    user,
)
from worker.dead_letters.brakes import Brakes
from worker.dead_letters.model import LetterFilter, ReplayOperation
from worker.dead_letters.records import DeadLetterRecords, OperationBusy, UnknownOperation
from worker.redaction import masked
from worker.tracing import TracingMisconfigured, replay_tracing

if TYPE_CHECKING:
    from worker.tracing.replay import ReplayTracing

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


@click.command("replay", short_help="Replay the selected letters, now or --at.")
@selection_options
@everything_option
@to_original_option
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; change nothing.")
@click.option("--force", is_flag=True, help="Replay even those replayed --max-replays times.")
@click.option(
    "--max-replays",
    default=DEFAULT_MAX_REPLAYS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Replays after which a dead letter is skipped unless --force.",
)
@click.option("--rate", type=Rate(), help="Letters per second (REPLAY_RATE).")
@click.option(
    "--canary",
    type=click.IntRange(min=1),
    help="Replay N letters first, wait for their outcomes, and go on only if they resolved.",
)
@click.option(
    "--canary-timeout",
    type=click.FloatRange(min=0, min_open=True, max=86_400),
    metavar="SECONDS",
    help="How long the canary waits for outcomes (REPLAY_CANARY_TIMEOUT).",
)
@click.option(
    "--resume", "resume_id", metavar="OP_ID", help="Take up a cancelled, interrupted or paused replay."
)
@click.option(
    "--at",
    metavar="WHEN",
    callback=scheduled_for,
    help="Do not replay now: schedule it for WHEN (ISO 8601 with its zone, or +30m, +2h); the"
    " workers run it then, and `dlq cancel` ends it while it waits.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def replay_command(
    selection: LetterFilter,
    routes: Routes,
    everything: bool,
    dry_run: bool,
    force: bool,
    max_replays: int,
    rate: float | None,
    canary: int | None,
    canary_timeout: float | None,
    resume_id: str | None,
    at: datetime | None,
    as_json: bool,
) -> None:
    """Republish the selected dead letters to the worker's input, at most --rate a second.

    Each goes to the events exchange under the routing key of its event type; a dead letter
    of another type, or whose headers name another exchange, is skipped unless --to-original.
    The body, message_id and properties are kept; the error headers are dropped and
    x-replay-count goes up by one, and the copy names its letter and this replay, so the
    letter's history learns its fate: resolved, or failed again as a new letter. With
    --canary N, N letters go first and the rest only once they resolved; any replay pauses
    itself when too many of its latest letters fail again (REPLAY_BRAKE_*). Ctrl-C stops
    cleanly after the letter in hand; `--resume OP_ID` takes up what is left. Two replays
    running at once never publish the same letter.
    """
    settings = load_settings()
    if resume_id is None:
        require_choice(selection, everything, "replay")
    if at is not None and (resume_id is not None or dry_run):
        raise click.ClickException("--at schedules a new replay: leave out --resume and --dry-run")
    log = logs.get_logger("renewals.dlq")
    with dead_letter_records() as records:
        if dry_run:
            letters = matching(records, selection)
            plans = [
                plan(as_dead_letter(x), routes, max_replays=max_replays, force=force, cut=cut(x))
                for x in letters
            ]
            print_plans(plans, as_json)
            return
        try:
            if resume_id is not None:
                operation = _resumed(records, resume_id)
                routes = Routes.of(settings, to_original=operation.to_original)
            else:
                matching(records, selection)  # an error if filters match nothing
                operation = actions.start_replay(
                    records,
                    user(),
                    selection,
                    rate=rate or settings.replay_rate,
                    to_original=routes.to_original,
                    force=force,
                    max_replays=max_replays,
                    at=at,
                    canary=canary or 0,
                )
        except (UnknownOperation, OperationBusy) as exc:
            raise click.ClickException(str(exc)) from None
        if operation.status == "scheduled":
            print_scheduled(operation, as_json)
            return
        progress = Progress(sys.stderr, operation.id) if sys.stderr.isatty() and not as_json else None
        broker = broker_of(settings)
        report = Report(total=operation.total)
        resume = f"resume with `renewals dlq replay --resume {operation.id}`"
        traced = _replay_tracing()
        try:
            with ReplayPublisher(broker, log=log) as publisher, _interruptible() as interrupted:
                operation, report = run(
                    records,
                    operation.id,
                    publisher,
                    routes,
                    progress=progress,
                    stop=interrupted.is_set,
                    actor=user(),
                    traced=traced,
                    brakes=Brakes.of(settings, canary_timeout=canary_timeout),
                )
            if traced is not None:
                traced.flush()
        except DeadLetterError as exc:
            records.finish(operation.id, actor=user(), cancelled=True)
            raise click.ClickException(f"{exc}; {resume}") from None
        except InvalidRate as exc:  # run() ended it cancelled
            raise click.ClickException(f"replay {operation.id}: {exc}") from None
        except OSError as exc:
            raise click.ClickException(
                f"broker error on {broker}: {type(exc).__name__}: {masked(str(exc))}; {resume}"
            ) from None
    if interrupted.is_set():
        _audit(log, operation, report, "interrupted")
        print_report(report, as_json, operation)
        click.echo(
            f"Error: interrupted: replay {operation.id} cancelled after {operation.done}"
            f" of {operation.total}; {resume}",
            err=True,
        )
        sys.exit(EXIT_INTERRUPTED)
    _audit(log, operation, report, operation.status if operation.status != "finished" else "completed")
    print_report(report, as_json, operation)
    if operation.status == "paused":
        raise click.ClickException(
            f"replay {operation.id} paused after {operation.done} of {operation.total}:"
            f" {operation.pause_reason}; the rest are untouched: look at them with"
            f" `renewals dlq replays`, then resume with `renewals dlq replay --resume {operation.id}`"
        )
    if operation.status == "cancelled":
        raise click.ClickException(
            f"replay {operation.id} was cancelled after {operation.done} of {operation.total};"
            f" resume with `renewals dlq replay --resume {operation.id}`"
        )
    if report.failed:
        raise click.ClickException(f"{len(report.failed)} dead letters could not be replayed; they stay new")


def _resumed(records: DeadLetterRecords, operation_id: str) -> ReplayOperation:
    """The replay taken up again; one whose stored rate cannot be held (written before rates
    were checked) is not resumed: one line says so, and the operation stays as it is."""
    try:
        return actions.resume_replay(records, user(), operation_id)
    except InvalidRate as exc:
        raise click.ClickException(
            f"replay {operation_id} cannot be resumed: {exc}; start a new replay of the same"
            " selection with --rate"
        ) from None


@contextmanager
def _interruptible() -> Iterator[threading.Event]:
    """Ctrl-C sets the event (the replay stops after the letter in hand, its outcomes
    committed); a second Ctrl-C interrupts at once."""
    interrupted = threading.Event()

    def on_interrupt(_signum: int, _frame: Any) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt
        interrupted.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _audit(log: logs.Logger, operation: ReplayOperation, report: Report, result: str) -> None:
    audit(
        log,
        "replayed",
        result=result + (" with failures" if report.failed else ""),
        warn=bool(report.failed) or result != "completed",
        operation=operation.id,
        selection=operation.selection.describe(),
        force=operation.force,
        max_replays=operation.max_replays,
        to_original=operation.to_original,
        rate=operation.rate,
        replayed=len(report.done),
        skipped=len(report.skipped),
        failed=len(report.failed),
        ids=[label(letter) for letter in report.done],
        skipped_ids=[label(step.letter) for step in report.skipped],
        failed_ids=[label(letter) for letter, _ in report.failed],
    )


def _replay_tracing() -> "ReplayTracing | None":
    """Spans for the replay when OTEL_* turn tracing on (docs/tracing.md)."""
    try:
        return replay_tracing(load_settings())
    except TracingMisconfigured as exc:
        raise click.ClickException(str(exc)) from None
