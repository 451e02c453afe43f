"""What a worker does between batches (when idle, and every few seconds under load): delete
confirmed outbox rows a quiet queue brought no transaction for, republish rows other workers
left behind, prune expired rows (resolved dead letters among them), and look at the outbox
backlog (which also tells readiness the store still answers while idle)."""

import time
from collections.abc import Callable

from worker.logs import Logger
from worker.service.metrics import Metrics
from worker.service.outbox import Outbox
from worker.service.processing import BatchProcessor
from worker.service.retention import Retention
from worker.service.store_line import StoreLine
from worker.settings import Settings
from worker.store import OutboxRow
from worker.store.dead_letters import DeadLetterRecords

LOOK_EVERY = 5.0  # seconds between looks at the outbox backlog


class Housekeeping:
    def __init__(
        self,
        settings: Settings,
        processor: BatchProcessor,
        store: StoreLine,
        *,
        log: Logger,
        metrics: Metrics,
        republish: Callable[[str, list[OutboxRow]], None],
    ) -> None:
        self._processor = processor
        self._outbox: Outbox = processor.outbox
        self._retention = Retention(processor.store, settings, letters=DeadLetterRecords(processor.store))
        self._store = store
        self._log = log
        self._metrics = metrics
        self._republish = republish
        self._next_look = 0.0

    def due(self) -> bool:
        """Something is scheduled by now (under load, the session makes room for it)."""
        now = time.monotonic()
        return now >= min(self._next_look, self._outbox.next_sweep, self._retention.next_round)

    def run(self, *, nothing_in_flight: bool) -> None:
        if self._outbox.pending_deletions() and nothing_in_flight:
            self._store.call(self._processor.flush)
        self._republish("outbox.orphans_republished", self._store.call(self._outbox.orphans))
        pruned = self._store.call(self._retention.prune_if_due)
        if pruned:
            self._log.info("store.pruned", rows=pruned)
        if time.monotonic() >= self._next_look:
            self._next_look = time.monotonic() + LOOK_EVERY
            pending, oldest_us = self._store.call(self._processor.store.outbox_stats)
            age = 0.0 if oldest_us is None else max(0.0, time.time() - oldest_us / 1e6)
            self._metrics.outbox(pending, age)
