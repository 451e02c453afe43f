"""The store line: the one thread a session uses the store from. Calls run there one at a time,
in the order they were made, so the main thread can parse the next batch (and talk to the
broker) while a transaction runs, and nothing else ever touches the store connection.

A call that finds the store unavailable is made again once the store is back: meanwhile the
session stops taking deliveries (`pause`), keeps its broker connections alive (`idle`) and
reconnects to the store with jittered, doubling backoff; then it resumes (`resume`).
"""

import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import TypeVar

from worker.logs import Logger
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
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="renewals-store")

    def submit(self, call: Callable[[], T]) -> "Future[T]":
        """Start `call` on the store thread, after whatever was submitted before."""
        return self._thread.submit(call)

    def result(self, future: "Future[T]", *, again: Callable[[], T], keep_alive: Callable[[], None]) -> T:
        """Wait for a submitted call (keeping the broker alive meanwhile); if the store was
        unavailable, make the call `again` once it is back."""
        while not future.done():
            wait([future], timeout=1.0)
            keep_alive()
        try:
            value = future.result()
        except StoreUnavailable as exc:
            return self._through_outage(again, exc)
        self._health.store(answers=True)
        return value

    def call(self, call: Callable[[], T]) -> T:
        """`call()` on the store thread, waiting out any outage (a failed call committed nothing)."""
        try:
            value = self._thread.submit(call).result()
        except StoreUnavailable as exc:
            return self._through_outage(call, exc)
        self._health.store(answers=True)
        return value

    def close(self) -> None:
        """Let a call that is running finish (or fail); the thread ends."""
        self._thread.shutdown(wait=True)

    def _through_outage(self, call: Callable[[], T], error: StoreUnavailable) -> T:
        lost_at = time.monotonic()
        self._log.warning("store.lost", store=self._store.description, error=str(error))
        self._metrics.store_errors.labels("unavailable").inc()
        self._health.store(answers=False)
        self._pause()  # take no new deliveries meanwhile; those in hand stay unacknowledged
        while True:
            self._reconnect()
            try:
                value = self._thread.submit(call).result()
            except StoreUnavailable:
                continue
            break
        self._log.info("store.recovered", outage_s=round(time.monotonic() - lost_at, 3))
        self._metrics.reconnects.labels("store").inc()
        self._health.store(answers=True)
        self._resume()
        return value

    def _reconnect(self) -> None:
        """Back off (jittered, doubling) until the store accepts a new connection."""
        delay = 0.2
        while True:
            self._idle(random.uniform(delay / 2, delay))
            try:
                self._thread.submit(self._store.reconnect).result()
                return
            except StoreUnavailable:
                delay = min(delay * 2, self._max_delay)
