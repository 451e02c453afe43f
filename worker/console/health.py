"""The health strip: can the console reach the store and the broker, and the figures an
operator watches (queue depths, dead letters in the last hour, how long since the worker
last processed an event, the outbox's backlog). The broker is read through one connection the
console keeps (`BrokerFigures`), its answer kept FRESH_FOR seconds: a page polling the strip, or
a script polling /api/health, opens no connection per request."""

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

    @property
    def ready(self) -> bool:
        return self.store_error is None and self.broker_error is None

    def as_dict(self) -> dict[str, Any]:
        return {"ready": self.ready, **asdict(self)}


FRESH_FOR = 2.0  # seconds the broker's figures are shown before they are read again
CONNECT_TIMEOUT = 3.0


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


def health(settings: Settings, connected: Callable[[], SqlStore], broker: BrokerFigures) -> ConsoleHealth:
    """Ask the store (`connected()` gives this thread's connection) now, and the broker through
    `broker`; an unreachable one is said in one line, not raised."""
    now_us = time.time_ns() // 1000
    store_figures: dict[str, Any] = {}
    store_error = None
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
    return ConsoleHealth(store_error, broker_error, **store_figures, **broker_figures)


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
