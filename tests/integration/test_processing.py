"""One batch through BatchProcessor on a real SQLite store: no broker, real transactions."""

import json
from pathlib import Path
from typing import Any

from events import RenewalApproaching
from handlers import HANDLERS, Decision, on_renewal_approaching
from support.messages import contact, renewal
from worker.service.messages import Delivery
from worker.service.processing import BatchProcessor
from worker.settings import Settings
from worker.store import open_store

DORA = contact("dora", "client.example")


def failing_for_doomed(event: RenewalApproaching, *, projection: Any) -> Decision:
    decision = on_renewal_approaching(event, projection=projection)  # writes first, then fails
    if event.data.client_id.startswith("doomed"):
        raise RuntimeError("bug after writing")
    return decision


def delivery(message: dict[str, Any], tag: int) -> Delivery:
    body = json.dumps(message).encode()
    return Delivery(body, {"content_type": "application/json"}, "renewals.events", "renewal.approaching", tag)


def test_a_failing_message_is_undone_alone_and_the_rest_of_the_batch_commits(tmp_path: Path) -> None:
    """A bug after a write, and a no_recipient, in the middle of a batch: both leave no trace;
    the good messages around them are committed and their notifications queued."""
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    processor = BatchProcessor(Settings(), store, {**HANDLERS, RenewalApproaching: failing_for_doomed})
    batch = [
        delivery(renewal("good-1", None, decision_maker=DORA, id="e1"), 1),
        delivery(renewal("doomed-1", None, decision_maker=DORA, id="e2"), 2),
        delivery(renewal("lonely", "p-none", id="e3"), 3),
        delivery(renewal("good-2", None, decision_maker=DORA, id="e4"), 4),
    ]
    results = processor.process(batch)
    assert [r.outcome for r in results] == [
        "renewal.notification_requested",
        "message.retry_scheduled",
        "message.dead_lettered",
        "renewal.notification_requested",
    ]
    assert [row.correlation_id for row in store.pending()] == ["e1", "e4"]
    with store.batch() as tx:
        assert [tx.record_event(event_id, 0) for event_id in ("e1", "e2", "e3", "e4")] == [
            False,
            True,
            True,
            False,
        ]
        assert tx.decision_maker("doomed-1") is None


def test_a_locked_store_sends_the_whole_batch_to_a_delayed_retry(tmp_path: Path) -> None:
    """Another writer holds the SQLite lock past the busy timeout: nothing is lost or dead-lettered,
    every delivery is scheduled for a retry, classified as transient, with its try counted."""
    import sqlite3

    url = f"sqlite:///{tmp_path / 'r.db'}"
    processor = BatchProcessor(Settings(), open_store(url))
    blocker = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        results = processor.process(
            [
                delivery(renewal("c1", None, decision_maker=DORA), 1),
                delivery(renewal("c2", None, decision_maker=DORA), 2),
            ]
        )
    finally:
        blocker.execute("ROLLBACK")
    assert [r.outcome for r in results] == ["message.retry_scheduled"] * 2
    assert all(r.fields["reason"] == "transient" for r in results)
    assert all(
        r.outgoing is not None and r.outgoing.properties["application_headers"]["x-attempts"] == 1
        for r in results
    )
    assert [r.outgoing.routing_key for r in results if r.outgoing] == ["renewals.worker.retry.1000ms"] * 2
