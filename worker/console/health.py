"""The health strip: can the console reach the store and the broker, and the figures an
operator watches (queue depths, dead letters in the last hour, how long since the worker
last processed an event, the outbox's backlog), and whether a worker consumes the input queue
(`ConsumingWatch`). The broker is read through one connection the console keeps
(`BrokerFigures`), its answer kept FRESH_FOR seconds: a page polling the strip, or a script
polling /api/health, opens no connection per request."""

import math
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from typing import Any

from amqp import Connection
from amqp.exceptions import NotFound

from worker.broker.endpoints import from_settings
from worker.redaction import masked
from worker.settings import Settings
from worker.store import SqlStore


@dataclass(frozen=True, slots=True)
class ConsoleHealth:
    store_error: str | None
    broker_error: str | None
    queue_depth: int | None = None
    queue_consumers: int | None = None
    dead_letter_queue_depth: int | None = None
    last_processed_seconds_ago: float | None = None
    outbox_rows: int | None = None
    outbox_oldest_seconds: float | None = None
    queues_missing: str | None = None
    not_consuming: str | None = None  # why no worker is seen consuming the input queue

    @property
    def ready(self) -> bool:
        """The store and the broker answer."""
        return self.store_error is None and self.broker_error is None

    @property
    def consuming(self) -> bool:
        """Ready, and a worker is seen taking the input queue's messages."""
        return self.ready and self.not_consuming is None and self.queues_missing is None

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, "consuming": self.consuming, **asdict(self)}


FRESH_FOR = 2.0  # seconds the broker's figures are shown before they are read again
CONNECT_TIMEOUT = 3.0
STALLED_AFTER = 10.0  # seconds messages may wait ready, with none processed, before the strip turns red


class ConsumingWatch:
    """Whether a worker consumes the input queue, judged from the console's looks as
    `worker.service.consumer_watch` judges it from inside the worker: not if the broker counts
    no consumer on it, nor if messages were ready at two looks `stalled_after` seconds apart
    with nothing processed between (the store's last processed event unchanged and the queue
    no shorter). A stopped worker is the first; a hung one, or a ghost consumer, the second."""

    def __init__(
        self, queue: str, *, stalled_after: float = STALLED_AFTER, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._queue = queue
        self._stalled_after = stalled_after
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: tuple[float, int, float | None] | None = None  # since, ready then, last processed then

    def judge(self, consumers: int, ready: int, last_processed: float | None) -> str | None:
        """Why no worker is seen consuming now, in one line; None if one is (or it is too soon to say)."""
        if consumers == 0:
            return f"no worker consumes {self._queue} (0 consumers): start one (`renewals run`)"
        now = self._clock()
        with self._lock:
            if ready == 0:
                self._waiting = None
                return None
            if self._waiting is None or self._moved(ready, last_processed):
                self._waiting = (now, ready, last_processed)
                return None
            waited = now - self._waiting[0]
        if waited < self._stalled_after:
            return None
        return (
            f"{ready} message(s) ready in {self._queue} and none processed for {waited:.0f} s:"
            " the worker is stuck or its consumer is a ghost (restart it)"
        )

    def _moved(self, ready: int, last_processed: float | None) -> bool:
        assert self._waiting is not None
        _, ready_then, processed_then = self._waiting
        return ready < ready_then or last_processed != processed_then


class BrokerFigures:
    """The queues' figures, read through one kept connection (opened on first use, opened
    again once when it broke, closed with `close`) and kept `fresh_for` seconds, an
    unreachable broker's error included, so a dead broker is not asked once per request."""

    def __init__(self, settings: Settings, *, fresh_for: float = FRESH_FOR) -> None:
        self._settings = settings
        self._broker = replace(from_settings(settings, heartbeat=0), connect_timeout=CONNECT_TIMEOUT)
        self._fresh_for = fresh_for
        self._connection: Connection | None = None
        self._lock = threading.Lock()  # one reader at a time: a py-amqp connection is not shared
        self._answer: tuple[dict[str, Any], str | None] = ({}, None)
        self._until = -math.inf

    def read(self) -> tuple[dict[str, Any], str | None]:
        """(figures, None), or ({}, the error in one line, secrets masked)."""
        with self._lock:
            if time.monotonic() < self._until:
                return self._answer
            try:
                self._answer = (self._read(), None)
            except Exception as exc:  # reported on the strip, not raised
                self._drop()
                self._answer = ({}, masked(f"{type(exc).__name__}: {exc}"))
            self._until = time.monotonic() + self._fresh_for
            return self._answer

    def close(self) -> None:
        """At shutdown: the kept connection is closed (politely, if it still answers)."""
        with self._lock:
            connection, self._connection = self._connection, None
            if connection is not None:
                with suppress(Exception):  # a broker already gone: nothing to close politely
                    connection.close()
                with suppress(Exception):
                    connection.collect()

    def _read(self) -> dict[str, Any]:
        if self._connection is not None:
            try:
                return _queue_figures(self._connection, self._settings)
            except Exception:  # the kept connection broke (a broker restart): once more, anew
                self._drop()
        self._connection, _ = self._broker.connect()
        return _queue_figures(self._connection, self._settings)

    def _drop(self) -> None:
        """Give up a connection that failed: its socket is closed, no goodbye is waited for."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(Exception):  # it is being given up: how it ends does not matter
                connection.collect()


def health(
    settings: Settings,
    connected: Callable[[], SqlStore],
    broker: BrokerFigures,
    watch: ConsumingWatch | None = None,
) -> ConsoleHealth:
    """Ask the store (`connected()` gives this thread's connection) now, and the broker through
    `broker`; an unreachable one is said in one line, not raised. With `watch`, whether a
    worker consumes the input queue is judged too."""
    now_us = time.time_ns() // 1000
    store_figures: dict[str, Any] = {}
    store_error = None
    last = None
    try:
        store = connected()
        store.ping()
        (last,) = store.execute("SELECT max(processed_at_us) FROM inbox").fetchone()
        rows, oldest = store.outbox_stats()
        store_figures = {
            "last_processed_seconds_ago": None if last is None else round((now_us - int(last)) / 1e6, 1),
            "outbox_rows": rows,
            "outbox_oldest_seconds": None if oldest is None else round((now_us - oldest) / 1e6, 1),
        }
    except Exception as exc:  # whatever it is, the strip says it and the page goes on
        store_error = masked(f"{type(exc).__name__}: {exc}")
        with suppress(Exception):  # a new connection next time, when it is back
            connected().reconnect()
    broker_figures, broker_error = broker.read()
    found = ConsoleHealth(store_error, broker_error, **store_figures, **broker_figures)
    if watch is None or found.queue_consumers is None or found.queue_depth is None:
        return found  # the broker or the queue is not there: the strip says so already
    last_processed = None if store_error is not None or last is None else float(last)
    return replace(found, not_consuming=watch.judge(found.queue_consumers, found.queue_depth, last_processed))


def _queue_figures(connection: Connection, settings: Settings) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    missing = []
    for name, depth, consumers in (
        (settings.queue, "queue_depth", "queue_consumers"),
        (settings.dead_letter_queue, "dead_letter_queue_depth", None),
    ):
        channel = connection.channel()
        try:
            _, figures[depth], count = channel.queue_declare(name, passive=True)
        except NotFound:  # the broker closed the channel; the next queue gets a new one
            missing.append(name)
            continue
        finally:
            if channel.is_open:
                channel.close()
        if consumers:
            figures[consumers] = count
    if missing:
        figures["queues_missing"] = (
            f"{', '.join(missing)} (`renewals topology --declare` or a worker creates them)"
        )
    return figures
