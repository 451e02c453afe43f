"""A store outage, waited out in one place: a call that finds the store unavailable is made
again once the store is back.

The session makes its store calls through `WorkerSession._stored`: a call that raises
StoreUnavailable is noted here (`lost`), the session stops taking deliveries, and `recover`
reconnects with jittered, doubling backoff (sleeping with the session's `wait`, which keeps
its broker connections alive) and makes the call again. A failed call committed nothing, so
making it again is always safe.
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
        self, store: SqlStore, *, log: Logger, metrics: Metrics, health: Health, max_delay: float
    ) -> None:
        self._store = store
        self._log, self._metrics, self._health = log, metrics, health
        self._max_delay = max_delay

    def call(self, call: Callable[[], T]) -> T:
        """`call()`; its StoreUnavailable goes to the caller, to `lost` and `recover`."""
        value = call()
        self._health.store(answers=True)
        return value

    def lost(self, error: StoreUnavailable) -> float:
        """Say the store is gone (log, metric, readiness); when it was lost."""
        self._log.warning("store.lost", store=self._store.description, error=str(error))
        self._metrics.store_errors.labels("unavailable").inc()
        self._health.store(answers=False)
        return time.monotonic()

    def recover(self, call: Callable[[], T], lost_at: float, *, sleep: Callable[[float], None]) -> T:
        """Reconnect (backing off with `sleep`) until `call()` goes through; its value."""
        while True:
            self._reconnect(sleep)
            try:
                value = call()
            except StoreUnavailable:
                continue
            break
        self._log.info("store.recovered", outage_s=round(time.monotonic() - lost_at, 3))
        self._metrics.reconnects.labels("store").inc()
        self._health.store(answers=True)
        return value

    def _reconnect(self, sleep: Callable[[float], None]) -> None:
        """Back off (jittered, doubling from 0.2s) until the store accepts a new connection."""
        retrying = waiting_first(StoreUnavailable, wait=half_jitter(0.2, self._max_delay), sleep=sleep)
        retrying(self._store.reconnect)
