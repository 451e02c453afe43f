"""Replays started from the console run in background threads of the console process, through
the records' throttled, cancellable replay. A cancel is a flag on the operation's row, so any
console (or `renewals dlq`) can cancel a replay this process runs, and the reverse."""

import threading
from collections.abc import Callable
from datetime import datetime

from worker.broker.endpoints import from_settings
from worker.console.identity import Identity
from worker.dead_letters import Routes
from worker.dead_letters import actions as use_cases
from worker.dead_letters import replays as replay_runs
from worker.dead_letters.brakes import Brakes
from worker.dead_letters.model import LetterFilter, ReplayOperation
from worker.dead_letters.queue import ReplayPublisher
from worker.dead_letters.records import DeadLetterRecords
from worker.logs import get_logger
from worker.redaction import masked
from worker.settings import Settings
from worker.store import SqlStore

log = get_logger("worker.console.replays")


class Runner:
    """Starts replays, each in a thread with its own store and broker connections."""

    def __init__(self, settings: Settings, open_store: Callable[[], SqlStore]) -> None:
        self._settings = settings
        self._open_store = open_store
        self._stopping = threading.Event()
        self._threads: dict[str, threading.Thread] = {}

    def start(
        self,
        records: DeadLetterRecords,
        identity: Identity,
        selection: LetterFilter,
        *,
        rate: float | None,
        force: bool,
        to_original: bool,
        max_replays: int,
        at: datetime | None = None,
        canary: int = 0,
        canary_timeout: float | None = None,
    ) -> ReplayOperation:
        """A replay running in a thread of this process; with `at`, one scheduled for then,
        which the workers run (worker/dead_letters/schedule.py), not this process."""
        operation = use_cases.start_replay(
            records,
            identity.name,
            selection,
            rate=rate,
            to_original=to_original,
            force=force,
            max_replays=max_replays,
            at=at,
            canary=canary,
        )
        if operation.status == "running":
            self._spawn(operation, identity, canary_timeout)
        return operation

    def resume(self, records: DeadLetterRecords, identity: Identity, operation_id: str) -> ReplayOperation:
        """Take up a cancelled, interrupted or paused replay where it stopped (UnknownOperation,
        OperationBusy if another process runs it, InvalidRate if its stored rate cannot be held:
        then it stays as it is); a finished one comes back as it is."""
        operation = use_cases.resume_replay(records, identity.name, operation_id)
        if operation.status == "running":
            self._spawn(operation, identity)
        return operation

    def _spawn(
        self, operation: ReplayOperation, identity: Identity, canary_timeout: float | None = None
    ) -> None:
        brakes = Brakes.of(self._settings, canary_timeout=canary_timeout)
        thread = threading.Thread(
            target=self._run,
            args=(operation.id, identity.name, brakes),
            name=f"replay-{operation.id}",
            daemon=True,
        )
        self._threads[operation.id] = thread
        thread.start()

    def running(self, operation_id: str) -> bool:
        thread = self._threads.get(operation_id)
        return thread is not None and thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """At shutdown: every replay stops after the letter in hand and ends cancelled."""
        self._stopping.set()
        for thread in list(self._threads.values()):
            thread.join(timeout)

    def _run(self, operation_id: str, actor: str, brakes: Brakes) -> None:
        store = self._open_store()
        records = DeadLetterRecords(store)
        try:
            operation = records.operation(operation_id)
            routes = Routes.of(self._settings, to_original=operation.to_original)
            broker = from_settings(self._settings, heartbeat=0)
            with ReplayPublisher(broker, log=log) as publisher:
                ended, _ = replay_runs.run(
                    records,
                    operation_id,
                    publisher,
                    routes,
                    stop=self._stopping.is_set,
                    actor=actor,
                    brakes=brakes,
                )
            log.info(
                "console.replay_ended",
                operation_id=operation_id,
                status=ended.status,
                done=ended.done,
                pause_reason=ended.pause_reason,
            )
        except Exception as exc:  # the thread must say why it ended, and end the operation
            log.error("console.replay_failed", operation_id=operation_id, error=masked(str(exc)))
            try:
                records.finish(operation_id, cancelled=True, actor=actor)
            except Exception as again:  # the store is gone too: the operation can be resumed
                log.error("console.replay_unfinished", operation_id=operation_id, error=masked(str(again)))
        finally:
            store.close()
