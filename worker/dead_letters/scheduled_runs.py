"""The worker's runner of scheduled replays (worker/dead_letters/schedule.py says what they
are): housekeeping's `look` asks the worker's store whether one is due; when one is and none
runs in this process, a thread with its own store and broker connections claims and runs every
due one, renewing its claim after each letter. A worker killed mid-run leaves a claim that runs
out; the next look of any worker takes the operation up where it stopped."""

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager

from worker.dead_letters.brakes import DEFAULT_BRAKES, Brakes
from worker.dead_letters.model import ReplayOperation
from worker.dead_letters.operations import Report
from worker.dead_letters.records import DeadLetterRecords
from worker.dead_letters.replays import Republisher, run
from worker.dead_letters.routing import Routes
from worker.dead_letters.schedule import runner_lease
from worker.logs import Logger
from worker.redaction import masked
from worker.store import OutboxRow
from worker.store.sql import SqlStore

LOOK_EVERY = 5.0  # seconds between a worker's looks for due replays

Publisher = Callable[[], AbstractContextManager[Republisher]]
"""A fresh publisher with confirms (worker.dead_letters.queue.ReplayPublisher over the broker)."""


class ScheduledReplays:
    """A worker's runner of due replays: `look` (housekeeping's chore) asks the worker's store
    whether one is due and, if so and none runs here, starts a thread that runs every due one."""

    def __init__(
        self,
        records: DeadLetterRecords,
        *,
        open_store: Callable[[], SqlStore],
        publisher: Publisher,
        routes: Callable[[bool], Routes],
        runner: str,
        log: Logger,
        brakes: Brakes = DEFAULT_BRAKES,
        look_every: float = LOOK_EVERY,
    ) -> None:
        self._records = records
        self._brakes = brakes
        self._open_store = open_store
        self._publisher = publisher
        self._routes = routes
        self._runner = runner
        self._log = log
        self._look_every = look_every
        self._next_look = 0.0
        self._thread: threading.Thread | None = None

    def look(self) -> list[OutboxRow]:
        """One store call every `look_every` seconds at most; a thread when a replay is due."""
        if time.monotonic() < self._next_look or self.running():
            return []
        self._next_look = time.monotonic() + self._look_every
        if self._records.any_due():
            self._thread = threading.Thread(target=self._run_due, name="scheduled-replays", daemon=True)
            self._thread.start()
        return []

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run_due(self) -> None:
        try:
            store = self._open_store()
        except Exception as exc:  # the next look tries again
            self._log.error("replay.scheduled_unopened", error=masked(str(exc)))
            return
        try:
            records = DeadLetterRecords(store)
            while (found := records.claim_due(self._runner)) is not None:
                try:
                    self._run_one(records, found)
                except Exception as exc:  # the broker: unreachable at the start, or gone mid-run
                    status = records.operation(found.id).status
                    self._log.error(
                        "replay.scheduled_failed",
                        operation_id=found.id,
                        status=status,
                        error=masked(str(exc)),
                        fix=f"renewals dlq replay --resume {found.id}"
                        if status == "cancelled"  # run() ended it: an operator resumes it
                        else "none: a later look takes it up once this claim runs out",
                    )
                    return
        except Exception as exc:  # the store: a claim's lease runs out, the next look takes it up
            self._log.error("replay.scheduled_failed", error=masked(str(exc)))
        finally:
            store.close()

    def _run_one(self, records: DeadLetterRecords, found: ReplayOperation) -> None:
        lease = runner_lease(found.rate)
        lost = threading.Event()
        renewed = time.monotonic()

        def renew(report: Report, *, finished: bool = False) -> None:
            nonlocal renewed
            if not finished and time.monotonic() - renewed >= lease / 3:
                renewed = time.monotonic()
                if not records.renew_runner(found.id, self._runner, lease=lease):
                    lost.set()

        self._log.info("replay.scheduled_started", operation_id=found.id, total=found.total, done=found.done)
        with self._publisher() as publisher:
            ended, _ = run(
                records,
                found.id,
                publisher,
                self._routes(found.to_original),
                progress=renew,
                stop=lost.is_set,
                actor=found.actor,
                brakes=self._brakes,
            )
        self._log.info("replay.scheduled_ended", operation_id=found.id, status=ended.status, done=ended.done)
