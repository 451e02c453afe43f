"""Every store call of a session goes through here, so that a store outage is waited out in one
place: a call that finds the store unavailable is made again once the store is back.

Meanwhile the session stops taking deliveries (`pause`), keeps its broker connections alive
(`idle`) and reconnects to the store with jittered, doubling backoff; then it resumes
(`resume`). A failed call committed nothing, so making it again is always safe.
"""

import time
from collections.abc import Callable
from typing import TypeVar

from worker.logs import Logger
from worker.retrying import half_jitter, waiting_first
from worker.service.health import Health
from worker.service.metrics import Metrics
from worker.store import SqlStore, StoreUnavailable

T = TypeVar("T")


class StoreLine:
    def __init__(
        self,
        store: SqlStore,
        *,
        log: Logger,
        metrics: Metrics,
        health: Health,
        max_delay: float,
        pause: Callable[[], None],
        resume: Callable[[], None],
        idle: Callable[[float], None],
    ) -> None:
        self._store = store
        self._log, self._metrics, self._health = log, metrics, health
        self._max_delay = max_delay
        self._pause, self._resume, self._idle = pause, resume, idle

    def call(self, call: Callable[[], T]) -> T:
        """`call()`, waiting out any outage."""
        try:
            value = call()
        except StoreUnavailable as exc:
            return self._through_outage(call, exc)
        self._health.store(answers=True)
        return value

    def _through_outage(self, call: Callable[[], T], error: StoreUnavailable) -> T:
        lost_at = time.monotonic()
        self._log.warning("store.lost", store=self._store.description, error=str(error))
        self._metrics.store_errors.labels("unavailable").inc()
        self._health.store(answers=False)
        self._pause()  # take no new deliveries meanwhile; those in hand stay unacknowledged
        while True:
            self._reconnect()
            try:
                value = call()
            except StoreUnavailable:
                continue
            break
        self._log.info("store.recovered", outage_s=round(time.monotonic() - lost_at, 3))
        self._metrics.reconnects.labels("store").inc()
        self._health.store(answers=True)
        self._resume()
        return value

    def _reconnect(self) -> None:
        """Back off (jittered, doubling from 0.2s) until the store accepts a new connection."""
        retrying = waiting_first(StoreUnavailable, wait=half_jitter(0.2, self._max_delay), sleep=self._idle)
        retrying(self._store.reconnect)
