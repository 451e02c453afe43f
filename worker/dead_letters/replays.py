"""Replays over the records: a throttled, cancellable, resumable operation that republishes
claimed letters through the worker's broker layer with confirms and records each outcome.

The CLI runs one in the foreground (Ctrl-C cancels cleanly); the console runs one in a
background thread and cancels it with `DeadLetterRecords.request_cancel` from any process.
Outcomes are committed after the broker's confirms, one letter at a time at the default rate
(up to MAX_GROUP at a time at high rates): a process killed at any moment leaves at most that
group both published and still new (claimed until its lease runs out); a resume publishes
them again, duplicates the worker's inbox absorbs, never a loss.
"""

import math
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from typing import Any, Protocol

from worker.boundary import aside, guarded
from worker.dead_letters.letter import DeadLetter
from worker.dead_letters.model import Claimed, HistoryEntry, LetterFilter, ReplayOperation, StoredLetter
from worker.dead_letters.operations import Plan, Report, plan
from worker.dead_letters.outline import OutlinedLetter
from worker.dead_letters.queue import ReplayRefused
from worker.dead_letters.records import DeadLetterRecords
from worker.dead_letters.routing import Routes
from worker.settings import MAX_REPLAY_RATE
from worker.tools.errors import ToolError

LOOK_EVERY = 0.5  # seconds between looks at the operation's cancel flag
BATCH = 50  # letters claimed at a time (fewer at low rates: two seconds' worth)
LEASE = 10.0  # seconds a claim holds at least; a replay killed holding letters frees them then
STALE_AFTER = LEASE  # seconds without a sign of life after which a running replay may be resumed
MAX_GROUP = 10  # at most this many letters are both published and still new after a kill


class InvalidRate(ToolError, ValueError):
    """A replay's rate that is not a finite number of letters a second in (0, MAX_REPLAY_RATE]."""


def check_rate(rate: float | None) -> float | None:
    """The rate as given if it is one a replay can hold (None: no limit, for tests and tools);
    InvalidRate, saying what is allowed, for infinity, NaN, zero, a negative or a huge one."""
    if rate is None or (math.isfinite(rate) and 0 < rate <= MAX_REPLAY_RATE):
        return rate
    raise InvalidRate(
        f"a replay's rate must be a number of letters per second above 0 and at most"
        f" {MAX_REPLAY_RATE:,}, not {rate}"
    )


class Republisher(Protocol):
    """Publishes one copy and waits for the broker's confirm; raises ReplayRefused when the
    broker does not take it."""

    def republish(self, exchange: str, routing_key: str, body: bytes, properties: dict[str, Any]) -> None: ...


Traced = Callable[[DeadLetter, tuple[str, str], dict[str, Any]], AbstractContextManager[dict[str, Any]]]
"""Wraps one republish (a span, when tracing is on: worker.tracing.replay), yielding the
properties to publish with."""


class ProgressListener(Protocol):
    """Told after each letter (and once with `finished`)."""

    def __call__(self, report: Report, *, finished: bool = False) -> None: ...


def as_dead_letter(letter: StoredLetter) -> DeadLetter:
    """The stored letter as the tools read one (its record number as its position); one that
    cannot be read is read with its body and why, its properties and headers left out."""
    properties = {**letter.properties, "headers": letter.headers}
    return guarded(
        lambda: DeadLetter.read(letter.summary.id, properties, letter.body, letter.problem),
        lambda why: DeadLetter.read(letter.summary.id, {}, letter.body, aside(why)),
    )


def cut(letter: StoredLetter) -> str | None:
    """Why the letter cannot be replayed as it came: its body was cut when recorded, or erased."""
    if letter.erasure is not None:
        return f"erased by operation {letter.erasure.operation_id}: never replayed"
    if not letter.body_truncated:
        return None
    return _cut(len(letter.body), letter.summary.body_size, letter.body_sha256)


def _cut(stored: int, size: int, sha256: str | None) -> str:
    return f"body cut to {stored} of {size} bytes when recorded (sha256 {sha256}): never replayed"


def preview(
    records: DeadLetterRecords,
    selection: LetterFilter,
    routes: Routes,
    *,
    max_replays: int,
    force: bool,
    limit: int,
) -> list[Plan[OutlinedLetter]]:
    """What a replay of the selection would do with its first `limit` letters (a dry run),
    changing nothing, read without their bodies."""
    return [
        plan(
            OutlinedLetter(outline.summary),
            routes,
            max_replays=max_replays,
            force=force,
            cut=None
            if outline.body_sha256 is None
            else _cut(outline.stored_body_size, outline.summary.body_size, outline.body_sha256),
        )
        for outline in records.outlines(selection, limit=limit)
    ]


def run(
    records: DeadLetterRecords,
    operation_id: str,
    publisher: Republisher,
    routes: Routes,
    *,
    progress: ProgressListener | None = None,
    stop: Callable[[], bool] = lambda: False,
    actor: str,
    traced: Traced | None = None,
) -> tuple[ReplayOperation, Report]:
    """Replay the operation's letters until none are left, it is cancelled (its row's flag,
    or `stop()` true), or the process is interrupted (KeyboardInterrupt: outcomes so far
    committed, claims released, the operation ends cancelled, then the interrupt goes on).
    Holds the operation's rate. Outcomes are committed after the broker's confirms, a group at
    a time (`group_size`). Returns the operation as it ended and what this run did. An
    operation whose stored rate cannot be held (InvalidRate) ends cancelled before any letter."""
    operation = records.operation(operation_id)
    try:
        check_rate(operation.rate)
    except InvalidRate:
        records.finish(operation_id, actor=actor, cancelled=True)
        raise
    report = Report(total=operation.total, scanned=operation.done)
    pace = _Pace(operation.rate)
    batch = max(1, min(BATCH, int((operation.rate or BATCH) * 2)))
    lease = max(LEASE, 3 * batch / (operation.rate or batch))
    group = group_size(operation.rate)
    held: list[Claimed] = []
    done: list[tuple[Claimed, HistoryEntry]] = []
    cancelled = False
    try:
        next_look = time.monotonic() + LOOK_EVERY
        while not cancelled:
            held = records.claim(operation_id, limit=batch, lease=lease)
            if not held:
                break
            while held:
                if time.monotonic() >= next_look:
                    next_look = time.monotonic() + LOOK_EVERY
                    cancelled = records.operation(operation_id).cancel_requested
                if cancelled or stop():
                    cancelled = True
                    break
                pace.wait()
                claimed = held.pop(0)
                done.append(
                    (claimed, _replay_one(claimed, publisher, routes, operation, report, actor, traced))
                )
                report.scanned += 1
                if len(done) >= group:
                    records.settle_all(done)
                    done = []
                if progress is not None:
                    progress(report)
            records.settle_all(done)
            done = []
            records.release(held)
            held = []
    except BaseException:
        records.settle_all(done)
        records.release(held)
        records.finish(operation_id, actor=actor, cancelled=True)
        if progress is not None:
            progress(report, finished=True)
        raise
    if progress is not None:
        progress(report, finished=True)
    return records.finish(operation_id, actor=actor, cancelled=cancelled), report


def group_size(rate: float | None) -> int:
    """Letters whose outcomes are committed together: one at a time up to 50 a second (the
    default), up to MAX_GROUP at higher rates, where a commit per letter would cap the rate."""
    return MAX_GROUP if rate is None else max(1, min(MAX_GROUP, int(rate / 50)))


def _replay_one(
    claimed: Claimed,
    publisher: Republisher,
    routes: Routes,
    operation: ReplayOperation,
    report: Report,
    actor: str,
    traced: Traced | None = None,
) -> HistoryEntry:
    letter = as_dead_letter(claimed.letter)
    now = datetime.now(UTC)
    step = plan(
        letter, routes, max_replays=operation.max_replays, force=operation.force, cut=cut(claimed.letter)
    )
    if step.action == "skip" or step.to is None:
        report.skipped.append(step)
        return HistoryEntry(at=now, kind="replay_skipped", actor=actor, outcome=step.note)
    properties = letter.replay_properties()
    try:
        with nullcontext(properties) if traced is None else traced(letter, step.to, properties) as sent:
            publisher.republish(*step.to, letter.body, sent)
    except ReplayRefused as exc:
        report.failed.append((letter, str(exc)))
        return HistoryEntry(at=now, kind="replay_failed", actor=actor, to=step.to, outcome=str(exc))
    report.done.append(letter)
    message_id = properties.get("message_id")
    return HistoryEntry(
        at=now,
        kind="replayed",
        actor=actor,
        to=step.to,
        outcome="published",
        message_id=message_id if isinstance(message_id, str) else None,
    )


class _Pace:
    """At most `rate` letters a second, evenly spaced (None: no limit)."""

    def __init__(self, rate: float | None) -> None:
        self._gap = 0.0 if not rate else 1.0 / rate
        self._next = time.monotonic()

    def wait(self) -> None:
        if self._gap:
            delay = self._next - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next = max(self._next, time.monotonic() - self._gap) + self._gap
