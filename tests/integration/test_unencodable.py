"""A batch whose publishes include messages that cannot be encoded, through the session's own
code with a real SQLite store and a scripted broker connection: each such message fails alone,
the others go out, and the batch is settled as usual."""

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tests.unit.test_service_parts import FakeConnection, publisher
from worker.broker.messages import Delivery, Outgoing
from worker.service.metrics import Metrics
from worker.service.outbox import Outbox
from worker.service.processing import Result
from worker.service.session import Session
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
        queued = transaction.enqueue(rows, 1)

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
    outbox = Outbox(store, grace_s=30, sweep_every_s=10)
    connection = FakeConnection()
    session = object.__new__(Session)  # the session's batch handling, without its broker connections
    session.__dict__.update(
        _store=SimpleNamespace(call=lambda call: call()),
        _processor=SimpleNamespace(store=store, process=lambda chunk: results),
        _outbox=outbox,
        _publisher=publisher(connection),
        _metrics=Metrics("sqlite"),
        _log=Lines(),
        _in_flight=None,
    )

    session._handle(deliveries)

    in_flight = session._in_flight
    assert in_flight is not None and in_flight.last_publish == 3 and in_flight.last_delivery == 4
    assert in_flight.outbox_seqs == [queued[0].seq, queued[2].seq]
    assert [(row.seq, "258 bytes" in reason) for row, reason in store.set_aside_rows()] == [
        (queued[1].seq, True)
    ]
    assert outbox.unconfirmed == {queued[0].seq, queued[2].seq}
    written = b"".join(connection.written)
    assert written.count(b'{"n": 0}') == written.count(b'{"n": 2}') == written.count(b"poison") == 1
    assert b'{"n": 1}' not in written and LONG.encode() not in written and b"x-up" not in written
    events = [(level, event) for level, event, _ in session._log.lines]
    assert events == [("error", "outbox.set_aside"), ("error", "message.copy_stripped")]
    assert session._metrics.outbox_set_aside._value.get() == 1
    store.close()
