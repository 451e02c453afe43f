"""The worker's lifecycle: connect, run a session, and reconnect when the broker goes away,
until asked to stop.

Connection attempts rotate through the broker's nodes with jittered exponential backoff
(tenacity's full jitter), so a fleet of workers does not come back at the same instants. A
consumer the broker no longer delivers to (`ConsumerLost`) is mended the same way: the session
settles what it holds, and a new one connects, declares and subscribes again; while a queue is
absent because `renewals topology --migrate` is declaring it again (`MigrationUnderWay`), the
worker waits for it with the same backoff instead of creating it.
"""

import random
import threading
import time
from collections.abc import Callable

from tenacity import RetryCallState

from worker.logs import Logger
from worker.messaging import BrokerLost, ConsumerLost, MigrationUnderWay, described
from worker.retrying import until_stopped
from worker.service.health import Health
from worker.service.metrics import Metrics
from worker.service.ports import Nodes
from worker.service.session import StoppedDuringOutage, WorkerSession
from worker.settings import Settings

# What reconnecting (with backoff) can cure: the links say so by raising BrokerLost (they
# translate the client library's errors: `worker.broker.links.LOSSES`). Not
# `failures.TRANSIENT`, which says what failure of one delivery is worth retrying later (a
# store conflict is; a lost connection ends the session instead, and comes here).
BROKER_TROUBLE = (BrokerLost,)


OpenSession = Callable[[int], tuple[WorkerSession, int]]
"""Connects a session's links to the first node, from the given one on, that accepts; the
session and that node's index (the composition root's `worker.app.session_opener`)."""


class Worker:
    """Runs until `stop` is set; reconnects with backoff whenever the broker goes away."""

    def __init__(
        self,
        settings: Settings,
        broker: Nodes,
        open_session: OpenSession,
        log: Logger,
        *,
        metrics: Metrics,
        health: Health,
    ) -> None:
        self._settings = settings
        self._broker = broker
        self._open = open_session
        self._log = log
        self._metrics = metrics
        self._health = health
        self._node = 0  # the node to try first

    def run(self, stop: threading.Event) -> None:
        lost = False
        while not stop.is_set():
            session = self._connect(stop)
            if session is None:
                return
            if lost:
                self._metrics.reconnects.labels("broker").inc()
            try:
                session.run(stop)
                return
            except StoppedDuringOutage:
                self._log.warning("worker.stopped", during="store outage", unacknowledged="redelivered")
                return
            except ConsumerLost:  # told by the session, which settled what it held
                session.close()
                lost = True
                self._wait_alive(stop, random.uniform(0, 1))  # a fleet's consumers were lost together
            except BROKER_TROUBLE as exc:
                self._log.warning(
                    "broker.connection_lost",
                    error=described(exc),
                    broker=str(self._broker.endpoints[self._node]),
                    exc_info=self._settings.log_level == "debug",
                )
                session.close()
                lost = True
                self._node = (self._node + 1) % len(self._broker.endpoints)
                self._wait_alive(stop, random.uniform(0, 1))  # spread a fleet's reconnects after a restart

    def _connect(self, stop: threading.Event) -> WorkerSession | None:
        """A session on the first node that accepts, retrying with backoff; None if stopped."""
        retrying = until_stopped(
            BROKER_TROUBLE,
            max_delay=self._settings.reconnect_max_delay,
            stop=stop,
            sleep=lambda seconds: self._wait_alive(stop, seconds),
            before_sleep=self._log_attempt,
        )
        session: WorkerSession | None = retrying(self._open_session)
        return session

    def _wait_alive(self, stop: threading.Event, seconds: float) -> None:
        """Wait out a backoff while the broker is away, ticking the loop clock: the worker is
        alive and doing the right thing (/healthz 200), only not ready (/readyz 503)."""
        deadline = time.monotonic() + seconds
        while not stop.is_set() and (remaining := deadline - time.monotonic()) > 0:
            self._health.tick()
            stop.wait(min(remaining, 1.0))
        self._health.tick()

    def _open_session(self) -> WorkerSession:
        self._health.tick()
        session, self._node = self._open(self._node)
        return session

    def _log_attempt(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        if isinstance(error, MigrationUnderWay):
            self._log.warning(
                "worker.waiting_for_migration",
                reason=str(error),
                retry_in_s=round(state.next_action.sleep, 2) if state.next_action else None,
            )
            return
        self._log.warning(
            "broker.connection_lost",
            error="NoneType: None" if error is None else described(error),
            retry_in_s=round(state.next_action.sleep, 2) if state.next_action else None,
            attempt=state.attempt_number,
            broker=str(self._broker),
        )
        self._node = (self._node + 1) % len(self._broker.endpoints)
