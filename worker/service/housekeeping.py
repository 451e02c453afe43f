"""What a worker does between batches (when idle, and every few seconds under load): delete
confirmed outbox rows a quiet queue brought no transaction for, find rows other workers left
behind, prune expired rows (resolved dead letters among them), and look at the outbox backlog
(which also tells readiness the store still answers while idle).

Each chore is one store call that touches no broker. The session runs the due ones
(`chores`), each through its store line, and republishes the rows the sweep returns.
"""

import time
from collections.abc import Callable

from worker.logs import Logger
from worker.service.metrics import Metrics
from worker.service.outbox import Outbox
from worker.service.retention import Retention
from worker.store import OutboxRow, SqlStore

LOOK_EVERY = 5.0  # seconds between looks at the outbox backlog

Chore = Callable[[], list[OutboxRow]]
"""One store call; the outbox rows it found to republish (most find none)."""


class Housekeeping:
    def __init__(
        self,
        store: SqlStore,
        outbox: Outbox,
        retention: Retention,
        *,
        flush: Callable[[], None],
        log: Logger,
        metrics: Metrics,
        replays: Chore | None = None,
    ) -> None:
        self._store = store
        self._outbox = outbox
        self._retention = retention
        self._flush = flush
        self._log = log
        self._metrics = metrics
        self._replays = replays  # due scheduled replays (worker/dead_letters/scheduled_runs.py)
        self._next_look = 0.0

    def due(self) -> bool:
        """Something is scheduled by now (under load, the session makes room for it)."""
        now = time.monotonic()
        return now >= min(self._next_look, self._outbox.next_sweep, self._retention.next_round)

    def chores(self, *, nothing_in_flight: bool) -> list[Chore]:
        """The chores to run now, in order: the outbox's deletions once nothing is in flight,
        the sweep, pruning, and the backlog look (and the look for due scheduled replays) when
        it is due."""
        due: list[Chore] = []
        if self._outbox.pending_deletions() and nothing_in_flight:
            due.append(self._delete_confirmed)
        due += (self._outbox.orphans, self._prune)
        if time.monotonic() >= self._next_look:
            self._next_look = time.monotonic() + LOOK_EVERY
            due += [self._look] if self._replays is None else [self._look, self._replays]
        return due

    def _delete_confirmed(self) -> list[OutboxRow]:
        self._flush()
        return []

    def _prune(self) -> list[OutboxRow]:
        pruned = self._retention.prune_if_due()
        if pruned:
            self._log.info("store.pruned", rows=pruned)
        return []

    def _look(self) -> list[OutboxRow]:
        pending, oldest_us = self._store.outbox_stats()
        age = 0.0 if oldest_us is None else max(0.0, time.time() - oldest_us / 1e6)
        self._metrics.outbox(pending, age)
        return []
