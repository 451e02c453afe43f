"""What operations do with dead letters: list, find, replay, purge. Deciding (`plan`) is kept
apart from doing, so a dry run shows exactly what a replay would do."""

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from worker.logs import Logger
from worker.tools.dead_letters.letter import DeadLetter
from worker.tools.dead_letters.queue import DeadLetterError, DeadLetterQueue, ReplayRefused
from worker.tools.dead_letters.routing import Routes, destination, target
from worker.tools.dead_letters.selection import Selection

DEFAULT_MAX_REPLAYS = 3


@dataclass(frozen=True, slots=True)
class Plan:
    """What a replay does with one selected dead letter: `note` says where to, or why not;
    `to` is the exchange and routing key it is published to (None: skipped)."""

    letter: DeadLetter
    action: Literal["replay", "skip"]
    note: str
    to: tuple[str, str] | None = None


@dataclass(slots=True)
class Report:
    """How far a replay or purge got; `scanned` of `total` messages read so far."""

    total: int = 0
    scanned: int = 0
    done: list[DeadLetter] = field(default_factory=list)
    skipped: list[Plan] = field(default_factory=list)
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"done": len(self.done), "skipped": len(self.skipped), "failed": len(self.failed)}


Traced = Callable[[DeadLetter, tuple[str, str], dict[str, Any]], AbstractContextManager[dict[str, Any]]]
"""Wraps one republish (a span, when tracing is on: worker.tracing.replay), yielding the
properties to publish with."""


class Progress(Protocol):
    """Told after every message read, and once more with `finished` when the run ends."""

    def __call__(self, report: Report, *, finished: bool = False) -> None: ...


def label(letter: DeadLetter) -> str:
    """The event id, or the queue position of a message without one."""
    return letter.id or f"#{letter.position}"


def selected(
    queue: DeadLetterQueue, selection: Selection, report: Report | None = None
) -> Iterator[tuple[DeadLetter, int]]:
    """The selected dead letters in queue order, with delivery tags; none acknowledged.

    Raises DeadLetterError when filters were given and nothing matched.
    """
    report = report if report is not None else Report()
    report.total = queue.count()
    matched = 0
    for letter, tag in queue.read():
        if selection.limit is not None and matched >= selection.limit:
            return
        report.scanned = letter.position
        if selection.matches(letter):
            matched += 1
            yield letter, tag
    if matched == 0 and selection.filtered:
        raise DeadLetterError(
            f"no dead letter matches {selection.describe()} ({report.total} in {queue.name})"
        )


def find(queue: DeadLetterQueue, event_id: str) -> list[DeadLetter]:
    """Every dead letter carrying `event_id`, or the one at position N for "#N" (the `#` column
    of `list`), in queue order; DeadLetterError if there is none."""
    position = int(event_id[1:]) if event_id[:1] == "#" and event_id[1:].isdigit() else None
    letters = [
        letter
        for letter, _ in selected(queue, Selection())
        if letter.id == event_id or letter.position == position
    ]
    if not letters:
        raise DeadLetterError(f"no dead letter with id {event_id} in {queue.name}")
    return letters


def plan(
    letter: DeadLetter, routes: Routes, *, max_replays: int = DEFAULT_MAX_REPLAYS, force: bool = False
) -> Plan:
    """Replay to the destination `routes` allow, unless replayed too often already."""
    to = destination(letter, routes)
    if isinstance(to, str):
        return Plan(letter, "skip", to)
    if letter.replay_count >= max_replays and not force:
        return Plan(letter, "skip", f"replayed {letter.replay_count} times already (see --force)")
    return Plan(letter, "replay", target(to), to)


def replay(
    queue: DeadLetterQueue,
    selection: Selection,
    routes: Routes,
    *,
    max_replays: int = DEFAULT_MAX_REPLAYS,
    force: bool = False,
    progress: Progress | None = None,
    log: Logger,
    traced: Traced | None = None,
) -> Report:
    """Republish each selected dead letter where its plan says; remove it only once the
    broker confirmed the copy.

    A kill between the confirm and the removal leaves a duplicate (which the worker's inbox
    absorbs), never a loss: whatever was not removed goes back to the queue, in order.
    """
    report = Report()
    context = {"force": force, "max_replays": max_replays, "to_original": routes.to_original}
    with _audited(log, "replayed", queue, selection, report, **context):
        try:
            for letter, tag in selected(queue, selection, report):
                step = plan(letter, routes, max_replays=max_replays, force=force)
                _replay_one(queue, step, tag, report, traced)
                if progress is not None:
                    progress(report)
        finally:
            if progress is not None:
                progress(report, finished=True)
    return report


def _replay_one(
    queue: DeadLetterQueue, step: Plan, tag: int, report: Report, traced: Traced | None = None
) -> None:
    letter = step.letter
    if step.action == "skip" or step.to is None:
        report.skipped.append(step)
        return
    properties = letter.replay_properties()
    try:
        with nullcontext(properties) if traced is None else traced(letter, step.to, properties) as sent:
            queue.republish(*step.to, letter.body, sent)
    except ReplayRefused as exc:
        report.failed.append((letter, str(exc)))
        return
    queue.remove(tag)  # only after the confirm
    report.done.append(letter)


def purge(queue: DeadLetterQueue, selection: Selection, *, log: Logger) -> Report:
    """Remove the selected dead letters for good; the others stay, in order."""
    report = Report()
    with _audited(log, "purged", queue, selection, report):
        for letter, tag in selected(queue, selection, report):
            queue.remove(tag)
            report.done.append(letter)
    return report


@contextmanager
def _audited(
    log: Logger,
    verb: str,
    queue: DeadLetterQueue,
    selection: Selection,
    report: Report,
    **context: Any,
) -> Iterator[None]:
    """One audit line per replay or purge (who, which ids, result; the logger adds when).

    None when the operation refused to start (no such queue, nothing selected): nothing was
    done, and the error says why.
    """
    try:
        yield
    except DeadLetterError:
        raise
    except BaseException as exc:
        _audit(log.warning, verb, queue, selection, report, context, f"interrupted: {exc!r}")
        raise
    if report.failed:
        _audit(log.warning, verb, queue, selection, report, context, "completed with failures")
    else:
        _audit(log.info, verb, queue, selection, report, context, "completed")


def _audit(
    write: Any,
    verb: str,
    queue: DeadLetterQueue,
    selection: Selection,
    report: Report,
    context: dict[str, Any],
    result: str,
) -> None:
    write(
        f"dlq.{verb}",
        user=_user(),
        broker=queue.broker,
        queue=queue.name,
        selection=selection.describe(),
        **context,
        result=result,
        **{verb: len(report.done), "skipped": len(report.skipped), "failed": len(report.failed)},
        ids=[label(letter) for letter in report.done],
        skipped_ids=[label(step.letter) for step in report.skipped],
        failed_ids=[label(letter) for letter, _ in report.failed],
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}"
