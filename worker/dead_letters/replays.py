"""Replays over the records: a throttled, cancellable, resumable operation that republishes
claimed letters through the worker's broker layer with confirms and records each outcome.

The CLI runs one in the foreground (Ctrl-C cancels cleanly); the console runs one in a
background thread and cancels it with `DeadLetterRecords.request_cancel` from any process.
Each copy names its letter and the operation, so the loop closes (`fates`): a canary's letters
go first and the rest only if they resolved, and a brake pauses a replay whose letters keep
failing again.
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
from worker.dead_letters.brakes import DEFAULT_BRAKES, Brakes, braking, verdict
from worker.dead_letters.letter import DeadLetter
from worker.dead_letters.model import Claimed, HistoryEntry, LetterFilter, ReplayOperation, StoredLetter
from worker.dead_letters.operations import Plan, Report, plan
from worker.dead_letters.outline import OutlinedLetter
from worker.dead_letters.queue import ReplayRefused
from worker.dead_letters.records import DeadLetterRecords
from worker.dead_letters.routing import Routes
from worker.logs import get_logger
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


class InvalidCanary(ToolError, ValueError):
    """A canary that is not a number of letters."""


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
    brakes: Brakes = DEFAULT_BRAKES,
) -> tuple[ReplayOperation, Report]:
    """Replay the operation's letters until none are left, it is cancelled (its row's flag,
    or `stop()` true), its canary or its brake pauses it, or the process is interrupted
    (KeyboardInterrupt: outcomes so far committed, claims released, the operation ends
    cancelled, then the interrupt goes on). Holds the operation's rate. Outcomes are committed
    after the broker's confirms, a group at a time (`group_size`). Returns the operation as it
    ended and what this run did. An operation whose stored rate cannot be held (InvalidRate)
    ends cancelled before any letter.

    With a canary not yet judged, its letters go first; then the run waits for their fates
    (`brakes.canary_timeout` at most) and goes on only if every one resolved, else pauses
    saying which failed again and why. Throughout, the brake pauses it when too many of its
    latest outcomes failed again."""
    operation = records.operation(operation_id)
    try:
        check_rate(operation.rate)
    except InvalidRate:
        records.finish(operation_id, actor=actor, cancelled=True)
        raise
    report = Report(total=operation.total, scanned=operation.done)
    going = _Run(records, operation, publisher, routes, report, progress, stop, actor, traced, brakes)
    try:
        stopped: str | None = None
        if operation.canary and operation.canary_result is None:
            stopped = going.replay(limit=max(0, operation.canary - operation.replayed))
            if stopped is None:
                stopped = going.judge_canary()
        if stopped is None:
            stopped = going.replay(limit=None)
    except BaseException:
        going.settle()
        records.finish(operation_id, actor=actor, cancelled=True)
        if progress is not None:
            progress(report, finished=True)
        raise
    if progress is not None:
        progress(report, finished=True)
    if stopped in (None, CANCELLED):
        return records.finish(operation_id, actor=actor, cancelled=stopped == CANCELLED), report
    return going.paused, report


CANCELLED = "cancelled"
PAUSED = "paused"
log = get_logger("worker.dead_letters.replays")


class _Run:
    """One run of a replay operation: its pace, its claims in hand, its outcomes to commit."""

    def __init__(
        self,
        records: DeadLetterRecords,
        operation: ReplayOperation,
        publisher: Republisher,
        routes: Routes,
        report: Report,
        progress: ProgressListener | None,
        stop: Callable[[], bool],
        actor: str,
        traced: Traced | None,
        brakes: Brakes,
    ) -> None:
        self._records = records
        self._operation = operation
        self._publisher = publisher
        self._routes = routes
        self._report = report
        self._progress = progress
        self._stop = stop
        self._actor = actor
        self._traced = traced
        self._brakes = brakes
        self._pace = _Pace(operation.rate)
        self._batch = max(1, min(BATCH, int((operation.rate or BATCH) * 2)))
        self._lease = max(LEASE, 3 * self._batch / (operation.rate or self._batch))
        self._group = group_size(operation.rate)
        self._brake_from = records.brake_from_us(operation.id)
        self._held: list[Claimed] = []
        self._done: list[tuple[Claimed, HistoryEntry]] = []
        self.paused = operation

    def replay(self, *, limit: int | None) -> str | None:
        """Publish letters until none are left or `limit` were published (skipped ones do not
        count); CANCELLED or PAUSED if it stopped before."""
        published = 0
        next_look = time.monotonic() + LOOK_EVERY
        while limit is None or published < limit:
            want = self._batch if limit is None else min(self._batch, limit - published)
            self._held = self._records.claim(self._operation.id, limit=want, lease=self._lease)
            if not self._held:
                return None
            while self._held:
                stopped: str | None = None
                if time.monotonic() >= next_look:
                    next_look = time.monotonic() + LOOK_EVERY
                    stopped = self._looked()
                if stopped or self._stop():
                    self.settle()
                    return stopped or CANCELLED
                self._pace.wait()
                claimed = self._held.pop(0)
                entry = self._replay_one(claimed)
                published += entry.kind == "replayed"
                self._done.append((claimed, entry))
                self._report.scanned += 1
                if len(self._done) >= self._group:
                    self._records.settle_all(self._done)
                    self._done = []
                if self._progress is not None:
                    self._progress(self._report)
            self.settle()
        return None

    def _replay_one(self, claimed: Claimed) -> HistoryEntry:
        return _replay_one(
            claimed, self._publisher, self._routes, self._operation, self._report, self._actor, self._traced
        )

    def _looked(self) -> str | None:
        """CANCELLED if someone asked, PAUSED if the brake held, else None."""
        if self._records.operation(self._operation.id).cancel_requested:
            return CANCELLED
        return self._brake()

    def settle(self) -> None:
        """Commit the outcomes in hand and give back the claims untried."""
        self._records.settle_all(self._done)
        self._done = []
        self._records.release(self._held)
        self._held = []

    def _brake(self) -> str | None:
        """PAUSED (the operation paused, saying why) when the brake holds."""
        brakes = self._brakes
        window = self._records.fate_window(self._operation.id, since_us=self._brake_from, size=brakes.window)
        reason = braking(window, brakes)
        if reason is None:
            return None
        log.warning("dlq.replay_braked", operation=self._operation.id, reason=reason)
        self.settle()
        self.paused = self._records.pause(self._operation.id, reason, actor=self._actor)
        return PAUSED

    def judge_canary(self) -> str | None:
        """Wait for the canary's fates: None if every one resolved (the rest may go), CANCELLED,
        or PAUSED saying which failed again and why (or which had no outcome in time)."""
        operation_id, brakes = self._operation.id, self._brakes
        deadline = time.monotonic() + brakes.canary_timeout
        while True:
            letters = self._records.replayed_letters(operation_id)
            pending = [letter for letter in letters if letter.fate is None]
            if not pending or time.monotonic() >= deadline:
                break
            if self._stop() or self._records.operation(operation_id).cancel_requested:
                return CANCELLED
            time.sleep(brakes.look_every)
        judged = verdict(letters, brakes.canary_timeout)
        if judged is None:
            self._records.canary_passed(operation_id)
            log.info("dlq.canary_passed", operation=operation_id, letters=len(letters))
            return None
        result, reason = judged
        log.warning("dlq.canary_failed", operation=operation_id, reason=reason)
        self.paused = self._records.pause(operation_id, reason, actor=self._actor, canary_result=result)
        return PAUSED


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
    properties = letter.replay_properties(operation.id)
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
