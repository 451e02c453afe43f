"""The health strip: can the console reach the store and the broker, and the figures an
operator watches (queue depths, dead letters in the last hour, how long since the worker
last processed an event, the outbox's backlog)."""

import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from typing import Any

from amqp.exceptions import NotFound

from worker.broker.endpoints import from_settings
from worker.redaction import masked
from worker.settings import Settings
from worker.store import SqlStore


@dataclass(frozen=True, slots=True)
class Health:
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


def health(settings: Settings, connected: Callable[[], SqlStore]) -> Health:
    """Ask the store (`connected()` gives this thread's connection) and the broker now; an
    unreachable one is said in one line, not raised."""
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
    broker_figures: dict[str, Any] = {}
    broker_error = None
    try:
        broker_figures = _queue_figures(settings)
    except Exception as exc:  # as above: reported, not raised
        broker_error = masked(f"{type(exc).__name__}: {exc}")
    return Health(store_error, broker_error, **store_figures, **broker_figures)


def _queue_figures(settings: Settings) -> dict[str, Any]:
    broker = replace(from_settings(settings, heartbeat=0), connect_timeout=3.0)
    connection, _ = broker.connect()
    figures: dict[str, Any] = {}
    missing = []
    try:
        for name, depth, consumers in (
            (settings.queue, "queue_depth", "queue_consumers"),
            (settings.dead_letter_queue, "dead_letter_queue_depth", None),
        ):
            try:
                _, figures[depth], count = connection.channel().queue_declare(name, passive=True)
            except NotFound:  # the channel is closed by the broker; the next gets a new one
                missing.append(name)
                continue
            if consumers:
                figures[consumers] = count
    finally:
        connection.close()
    if missing:
        figures["queues_missing"] = (
            f"{', '.join(missing)} (`renewals topology --declare` or a worker creates them)"
        )
    return figures
