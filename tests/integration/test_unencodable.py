"""A batch whose publishes include messages that cannot be encoded, through a whole session
with a real SQLite store and the in-memory broker (whose publisher lays messages out with the
real frame encoder): each such message fails alone, the others go out, and the batch is
settled as usual."""

import json
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from handlers import HANDLERS
from tests.memory_broker import MemoryBroker, memory_session
from worker.app import build_services
from worker.messaging import Delivery, Outgoing
from worker.service.health import Health
from worker.service.metrics import Metrics
from worker.service.processing import Result
from worker.settings import Settings
from worker.store import OutboxRow, open_store

LONG = "€" * 86  # 258 bytes


class Lines:
    """A logger that keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((level, event, fields))


def test_in_one_batch_an_unencodable_notification_is_set_aside_and_an_unencodable_copy_goes_out_bare(
    tmp_path: Path,
) -> None:
    """Four results: a good notification, one with a correlation_id of 258 bytes, a dead letter whose copied properties cannot be encoded, another good one. The good ones are sent; the bad notification's row is set aside in the store (not confirmed, not deleted); the dead letter goes out bare; the batch's last publish tag counts all three sent."""
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    store.migrate()
    rows = [
        OutboxRow(f"n-{n}", cause, "notification.requested.both", json.dumps({"n": n}).encode())
        for n, cause in enumerate(["e-0", LONG, "e-3"])
    ]
    with store.transaction() as transaction:
        queued = transaction.enqueue(rows, time.time_ns() // 1000)  # fresh: no sweep takes them

    def notification(row: OutboxRow) -> Outgoing:
        return Outgoing(
            "renewals.notifications", row.routing_key, row.body, {"correlation_id": row.correlation_id}
        )

    deliveries = [Delivery(b"{}", {}, "renewals.events", "renewal.approaching", tag) for tag in range(1, 5)]
    stripped = {
        "correlation_id": LONG,
        "application_headers": {"x-error-reason": "invalid_payload", "x-up": "1"},
    }
    results = [
        Result(deliveries[0], "renewal.notification_requested", {"event_id": "e-0"}, notification(queued[0]), queued[0].seq),
        Result(deliveries[1], "renewal.notification_requested", {"event_id": LONG}, notification(queued[1]), queued[1].seq),
        Result(deliveries[2], "message.dead_lettered", {}, Outgoing("", "renewals.worker.dlq", b"poison", stripped)),
        Result(deliveries[3], "renewal.notification_requested", {"event_id": "e-3"}, notification(queued[2]), queued[2].seq),
    ]  # fmt: skip
    broker = MemoryBroker()
    for body in (b"{}",) * 4:
        broker.deliver(body)
    log = Lines()
    services = build_services(
        Settings(),
        store,
        HANDLERS,
        metrics=Metrics("sqlite"),
        health=Health(60),
        log=log,  # type: ignore[arg-type]
    )
    processor = SimpleNamespace(process=lambda chunk, **_options: results, flush=services.processor.flush)
    session = memory_session(broker, replace(services, processor=processor))

    session.run(broker.stop)

    sent = ["send 2", "send 1", "confirmed 3", "ack 4"]  # two notifications, the bare copy; then the batch
    assert broker.log[:6] == ["consume", "deliver [1, 2, 3, 4]", *sent]
    assert [(row.seq, "258 bytes" in reason) for row, reason in store.set_aside_rows()] == [
        (queued[1].seq, True)
    ]
    assert services.outbox.unconfirmed == set() and store.outbox_stats()[0] == 0  # sent rows deleted
    bodies = [message.body for message in broker.published]
    assert bodies == [b'{"n": 0}', b'{"n": 2}', b"poison"]
    [bare] = [message for message in broker.published if message.body == b"poison"]
    assert bare.properties["application_headers"] == {"x-error-reason": "invalid_payload"}  # no x-up
    events = [(level, event) for level, event, _ in log.lines if level == "error"]
    assert events == [("error", "outbox.set_aside"), ("error", "message.copy_stripped")]
    assert services.metrics.outbox_set_aside._value.get() == 1
    store.close()
