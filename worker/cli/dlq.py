"""`renewals dlq`: list, show, replay, export and purge dead letters."""

import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click
from amqp.exceptions import AMQPError

from worker import logs
from worker.cli.core import broker_of, load_settings
from worker.cli.dlq_output import (
    LIST_COLUMNS,
    PURGE_COLUMNS,
    Progress,
    described,
    listed,
    print_plans,
    print_report,
    row,
)
from worker.redaction import masked
from worker.tools.dead_letters import (
    DEFAULT_MAX_REPLAYS,
    DeadLetterError,
    DeadLetterQueue,
    Routes,
    Selection,
    find,
    parse_when,
    plan,
    purge,
    replay,
    selected,
)
from worker.tools.tables import render
from worker.tracing import TracingMisconfigured, replay_tracing

if TYPE_CHECKING:
    from worker.tracing.replay import ReplayTracing

Command = Callable[..., None]


def _when(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    try:
        return None if value is None else parse_when(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def selection_options(command: Command) -> Command:
    """The shared filters, handed to the command as one `selection` argument."""

    @functools.wraps(command)
    def wrapper(
        reason: Sequence[str],
        type_: Sequence[str],
        id_: Sequence[str],
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
        **rest: Any,
    ) -> None:
        filters = Selection(frozenset(reason), frozenset(type_), frozenset(id_), since, until, limit)
        command(selection=filters, **rest)

    options = [
        click.option("--reason", multiple=True, help="Only this reason (repeatable)."),
        click.option("--type", "type_", multiple=True, help="Only this event type (repeatable)."),
        click.option("--id", "id_", multiple=True, help="Only this event id (repeatable)."),
        click.option("--since", metavar="WHEN", callback=_when, help="Failed at or after WHEN."),
        click.option("--until", metavar="WHEN", callback=_when, help="Failed before WHEN."),
        click.option("--limit", type=click.IntRange(min=1), help="At most N, in queue order."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def everything_option(command: Command) -> Command:
    return click.option("--all", "everything", is_flag=True, help="Every dead letter.")(command)


def to_original_option(command: Command) -> Command:
    """`--to-original`, handed to the command as the `routes` replays may take."""

    @functools.wraps(command)
    def wrapper(to_original: bool, **rest: Any) -> None:
        command(routes=Routes.of(load_settings(), to_original=to_original), **rest)

    return click.option(
        "--to-original",
        is_flag=True,
        help="Trust the x-original-* (or x-death) headers for where a replay goes, instead of the"
        " input exchange under the event type's routing key. They can be forged: nothing ever goes"
        " to the notifications exchange.",
    )(wrapper)


def _replay_tracing() -> "ReplayTracing | None":
    """Spans for the replay when OTEL_* turn tracing on (docs/tracing.md)."""
    try:
        return replay_tracing(load_settings())
    except TracingMisconfigured as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def dead_letter_queue() -> Iterator[DeadLetterQueue]:
    """The configured dead-letter queue; any failure becomes one line and exit status 1."""
    settings = load_settings()
    broker = broker_of(settings)
    try:
        with DeadLetterQueue(
            broker, settings.dead_letter_queue, log=logs.get_logger("renewals.dlq")
        ) as queue:
            yield queue
    except DeadLetterError as exc:
        raise click.ClickException(str(exc)) from None
    except (AMQPError, OSError) as exc:
        raise click.ClickException(
            f"broker error on {broker}: {type(exc).__name__}: {masked(str(exc))}"
        ) from None


@click.group("dlq")
def dlq() -> None:
    """Inspect, replay, export and purge dead letters.

    Reading never changes the queue, not even its order. Replay republishes each selected
    message to the worker's input exchange under its event type's routing key (or, with
    --to-original, where its x-original-* headers say) with publisher confirms, and removes it
    from the dead-letter queue only after the broker confirmed the copy.

    WHEN is an ISO 8601 date or time (UTC unless it says otherwise) or an age: 90s, 15m, 2h, 7d.
    """


@dlq.command("list")
@selection_options
@to_original_option
@click.option("--json", "as_json", is_flag=True, help="A JSON array, for scripts.")
def list_command(selection: Selection, routes: Routes, as_json: bool) -> None:
    """One row per dead letter, in queue order, with where a replay would send it."""
    with dead_letter_queue() as queue:
        summaries = [listed(letter, routes) for letter, _ in selected(queue, selection)]
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
    elif not summaries:
        click.echo(f"{queue.name} is empty")
    else:
        click.echo(render([row(summary) for summary in summaries], LIST_COLUMNS))


@dlq.command()
@click.argument("event_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def show(event_id: str, as_json: bool) -> None:
    """Every header and the body of the dead letter with this event id.

    Any dead letter can also be named by its queue position, the `#` column of `list`:
    `show '#2'` (the only way to name one without an id, a body that is not JSON, say).
    """
    with dead_letter_queue() as queue:
        matches = find(queue, event_id)
    letter = matches[0]
    if len(matches) > 1:
        click.echo(f"note: {len(matches)} dead letters have id {event_id}; the first:", err=True)
    click.echo(json.dumps(letter.as_record(), indent=2) if as_json else described(letter, queue.name))


@dlq.command("replay")
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
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def replay_command(
    selection: Selection,
    routes: Routes,
    everything: bool,
    dry_run: bool,
    force: bool,
    max_replays: int,
    as_json: bool,
) -> None:
    """Republish the selected dead letters to the worker's input.

    Each goes to the events exchange under the routing key of its event type; a dead letter
    of another type, or whose headers name another exchange, is skipped unless --to-original.
    The body, message_id and properties are kept; the error headers are dropped and
    x-replay-count goes up by one. Messages not selected stay in the queue, in order.
    """
    _require_choice(selection, everything, "replay")
    if dry_run:
        with dead_letter_queue() as queue:
            letters = [letter for letter, _ in selected(queue, selection)]
        plans = [plan(letter, routes, max_replays=max_replays, force=force) for letter in letters]
        print_plans(plans, queue.name, as_json)
        return
    progress = Progress(sys.stderr) if sys.stderr.isatty() and not as_json else None
    log = logs.get_logger("renewals.dlq")
    traced = _replay_tracing()
    with dead_letter_queue() as queue:
        report = replay(
            queue, selection, routes, max_replays=max_replays, force=force, progress=progress, log=log,
            traced=traced,
        )  # fmt: skip
    if traced is not None:
        traced.flush()
    print_report(report, queue.name, as_json)
    if report.failed:
        failed = f"{len(report.failed)} dead letters could not be replayed"
        raise click.ClickException(f"{failed}; they stay in {queue.name}")


@dlq.command()
@selection_options
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="JSON lines file (- for stdout).",
)
def export(selection: Selection, out: str) -> None:
    """Write the selected dead letters (headers, properties, body) as JSON lines; remove none."""
    with dead_letter_queue() as queue:
        letters = [letter for letter, _ in selected(queue, selection)]
    with click.open_file(out, "w") as stream:
        for letter in letters:
            stream.write(json.dumps(letter.as_record()) + "\n")
    click.echo(f"exported {len(letters)} dead letters to {out} (none removed)", err=out == "-")


@dlq.command("purge")
@selection_options
@everything_option
@click.option("--yes", is_flag=True, help="Really remove them.")
def purge_command(selection: Selection, everything: bool, yes: bool) -> None:
    """Remove the selected dead letters for good (only with --yes) and say how many."""
    _require_choice(selection, everything, "purge")
    if not yes:
        with dead_letter_queue() as queue:
            rows = [row(letter.summary()) for letter, _ in selected(queue, selection)]
        if rows:
            click.echo(render(rows, PURGE_COLUMNS))
        raise click.ClickException(f"would purge {len(rows)}; nothing removed without --yes")
    with dead_letter_queue() as queue:
        report = purge(queue, selection, log=logs.get_logger("renewals.dlq"))
    click.echo(f"purged {len(report.done)} dead letters from {queue.name}")


def _require_choice(selection: Selection, everything: bool, verb: str) -> None:
    if not selection.filtered and not everything:
        raise click.ClickException(f"say which to {verb}: give a filter (--reason, --id, ...) or --all")
    if selection.filtered and everything:
        raise click.ClickException("--all cannot be combined with filters")
