"""Batches through BatchProcessor on real stores: no broker, real transactions, and two
processors on two connections where concurrency matters."""

import json
import sqlite3
import threading
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from events import OwnerChanged, RenewalApproaching
from handlers import (
    HANDLERS,
    Decision,
    HandlerMap,
    Projection,
    ReminderKey,
    SettingKey,
    on_owner_changed,
    on_renewal_approaching,
)
from support.messages import contact, owner_changed, renewal
from worker.broker.publisher import encoded_size
from worker.messaging import Delivery
from worker.service.outbox import Outbox
from worker.service.processing import BatchProcessor
from worker.settings import Settings
from worker.store import SqlStore, StoreUnavailable, open_store


def processor_over(store: SqlStore, handlers: HandlerMap = HANDLERS) -> BatchProcessor:
    """The batch processor as the composition root builds it, over `store`."""
    outbox = Outbox(store, grace_s=30, sweep_every_s=10)
    return BatchProcessor(Settings(), store, handlers, outbox=outbox, encoded_size=encoded_size)


DORA = contact("dora", "client.example")
ALICE = contact("alice")
BOB = contact("bob")


def failing_for_doomed(
    event: RenewalApproaching, *, projection: Projection, now: datetime | None = None
) -> Decision:
    decision = on_renewal_approaching(event, projection=projection, now=now)  # writes first, then fails
    if event.data.client_id.startswith("doomed"):
        raise RuntimeError("bug after writing")
    return decision


def delivery(message: dict[str, Any], tag: int = 1) -> Delivery:
    body = json.dumps(message).encode()
    key = "owner.changed" if message["type"] == "OwnerChanged" else "renewal.approaching"
    return Delivery(body, {"content_type": "application/json"}, "renewals.events", key, tag)


def store_at(url: str) -> SqlStore:
    store = open_store(url)
    store.migrate()
    return store


def outbox(store: SqlStore) -> list[str]:
    """Correlation ids of every row in the outbox, oldest first."""
    return [row.correlation_id for row in store.claim_orphans(now_us=2**62, grace_us=0, limit=10_000)]


def test_a_failing_message_is_undone_alone_and_the_rest_of_the_batch_commits(tmp_path: Path) -> None:
    """A bug after a write, and a no_recipient, in the middle of a batch: both leave no trace;
    the good messages around them are committed and their notifications queued."""
    store = store_at(f"sqlite:///{tmp_path / 'r.db'}")
    processor = processor_over(store, {**HANDLERS, RenewalApproaching: failing_for_doomed})
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
    assert all(r.outbox_seq is not None for r in (results[0], results[3]))
    assert outbox(store) == ["e1", "e4"]
    with store.transaction() as transaction:
        assert transaction.record_events(["e1", "e2", "e3", "e4"], 0) == {"e2", "e3"}
        assert transaction.decision_makers(["doomed-1", "good-1"])["doomed-1"] is None
        assert transaction.reminders([ReminderKey("doomed-1", date(2026, 12, 20), 30)]) == {
            ReminderKey("doomed-1", date(2026, 12, 20), 30): None
        }


def test_a_locked_store_is_reported_unavailable_and_the_batch_goes_through_once_it_is_free(
    tmp_path: Path,
) -> None:
    """Another writer holds the SQLite lock past the busy timeout: the batch is not failed and
    no attempt is counted (StoreUnavailable, nothing committed); once the lock is released the
    same deliveries go through."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store_at(url)
    processor = processor_over(open_store(url, lock_timeout=0.2))
    batch = [
        delivery(renewal("c1", None, decision_maker=DORA), 1),
        delivery(renewal("c2", None, decision_maker=DORA), 2),
    ]
    blocker = sqlite3.connect(tmp_path / "r.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StoreUnavailable, match="locked"):
            processor.process(batch)
    finally:
        blocker.execute("ROLLBACK")
    assert [r.outcome for r in processor.process(batch)] == ["renewal.notification_requested"] * 2


def run_one_by_one(url: str, messages: list[dict[str, Any]]) -> list[str]:
    processor = processor_over(store_at(url))
    return [processor.process([delivery(m)])[0].outcome for m in messages]


def final_state(store: SqlStore, clients: list[str]) -> tuple[Any, ...]:
    with store.transaction() as transaction:
        settings = transaction.settings([SettingKey("p1", None), *(SettingKey("p1", c) for c in clients)])
        makers = transaction.decision_makers(clients)
    return settings, makers, outbox(store)


def test_a_batch_with_several_events_for_the_same_key_ends_as_one_by_one_would(tmp_path: Path) -> None:
    """Settings changed several times in one batch (in and out of order), reminders repeated,
    decision makers replaced: the outcomes and the stored state equal handling each event in
    a batch of its own."""
    messages = [
        owner_changed("platform", partner_contact=ALICE, id="o1", time="2026-11-20T10:00:00+00:00"),
        renewal("c1", decision_maker=DORA, id="r1"),
        owner_changed("partner", partner_contact=BOB, id="o2", time="2026-11-20T11:00:00+00:00"),
        owner_changed("platform", id="o0", time="2026-11-20T09:00:00+00:00"),  # older: ignored
        renewal("c2", id="r2"),
        owner_changed("platform", "p1", "c2", id="o3", time="2026-11-20T12:00:00+00:00"),
        owner_changed("default", "p1", "c2", id="o4", time="2026-11-20T12:30:00+00:00"),
        renewal("c1", decision_maker=contact("dan", "client.example"), id="r3", days=14),
        renewal("c1", id="r1-again", days=30),  # the same reminder as r1 under another id
        renewal("c3", id="r4"),
        renewal("c1", decision_maker=DORA, id="r1"),  # r1 delivered twice
    ]
    single = store_at(f"sqlite:///{tmp_path / 'single.db'}")
    one_by_one = run_one_by_one(f"sqlite:///{tmp_path / 'single.db'}", messages)
    batched = store_at(f"sqlite:///{tmp_path / 'batched.db'}")
    together = processor_over(batched).process([delivery(m, n) for n, m in enumerate(messages, 1)])
    assert [r.outcome for r in together] == one_by_one
    assert "owner.stale_ignored" in one_by_one and "renewal.duplicate_reminder" in one_by_one
    assert final_state(batched, ["c1", "c2", "c3"]) == final_state(single, ["c1", "c2", "c3"])


class Paused:
    """A handler that decides, then waits to be released before the batch writes anything."""

    def __init__(self) -> None:
        self.decided, self.release = threading.Event(), threading.Event()

    def __call__(
        self, event: OwnerChanged, *, projection: Projection, now: datetime | None = None
    ) -> Decision:
        decision = on_owner_changed(event, projection=projection, now=now)
        self.decided.set()
        assert self.release.wait(10)
        return decision


def test_newer_committed_first_then_older_the_newer_stays_and_the_older_is_logged_stale(
    store_url: str,
) -> None:
    """Two workers on two connections: the older change has read the (empty) setting when the
    newer one commits; its write then changes nothing, and its outcome says so. On PostgreSQL
    the conditional write finds the newer row; on SQLite, where the older decided outside the
    write lock, it finds under the lock that what it read has changed, and decides again."""
    store_at(store_url)
    paused = Paused()
    older = processor_over(open_store(store_url), {**HANDLERS, OwnerChanged: paused})
    newer = processor_over(open_store(store_url))
    old_event = owner_changed("platform", partner_contact=ALICE, id="old", time="2026-11-20T10:00:00+00:00")
    new_event = owner_changed("partner", partner_contact=BOB, id="new", time="2026-11-20T11:00:00+00:00")
    outcomes: list[str] = []
    thread = threading.Thread(
        target=lambda: outcomes.extend(r.outcome for r in older.process([delivery(old_event)]))
    )
    thread.start()
    assert paused.decided.wait(10)
    assert [r.outcome for r in newer.process([delivery(new_event)])] == ["owner.changed"]
    paused.release.set()
    thread.join(10)
    assert outcomes == ["owner.stale_ignored"]
    with open_store(store_url).transaction() as transaction:
        stored = transaction.settings([SettingKey("p1", None)])[SettingKey("p1", None)]
    assert stored is not None and stored.stamp.event_id == "new"
    assert stored.value is not None and stored.value.owner == "partner"
    assert older.decided_again == 0


def test_sqlite_a_batch_decided_outside_the_write_lock_ends_as_on_postgresql(tmp_path: Path) -> None:
    """SQLite: a batch decides in a read-only transaction and takes the write lock only to
    write, so another worker's batch commits meanwhile. Its writes then report what stood, as on
    PostgreSQL: other clients' changes leave its decisions standing; a reminder the other worker
    claimed meanwhile is a duplicate, with no second notification. Only an event the other
    worker handled meanwhile makes the batch decide again, under the lock."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store_at(url)
    paused = Paused()
    slow = processor_over(open_store(url), {**HANDLERS, OwnerChanged: paused})
    other = processor_over(open_store(url))

    def meanwhile(batch: list[dict[str, Any]], then: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
        paused.decided.clear()
        paused.release.clear()
        outcomes: list[str] = []
        thread = threading.Thread(
            target=lambda: outcomes.extend(r.outcome for r in slow.process([delivery(m) for m in batch]))
        )
        thread.start()
        assert paused.decided.wait(10)
        others = [r.outcome for r in other.process([delivery(m) for m in then])]
        paused.release.set()
        thread.join(10)
        return outcomes, others

    elsewhere = [owner_changed("partner", "p2", partner_contact=BOB, id="o2"), renewal("c2", "p2", id="r2")]
    mine = [owner_changed("platform", partner_contact=ALICE, id="o1"), renewal("c1", id="r1")]
    assert meanwhile(mine, elsewhere) == (
        ["owner.changed", "renewal.notification_requested"],
        ["owner.changed", "renewal.notification_requested"],
    )
    assert slow.decided_again == 0

    claimed = [owner_changed("platform", partner_contact=ALICE, id="o3"), renewal("c3", id="r3")]
    assert meanwhile(claimed, [renewal("c3", id="r3-elsewhere")]) == (
        ["owner.changed", "renewal.duplicate_reminder"],
        ["renewal.notification_requested"],
    )
    assert slow.decided_again == 0
    assert outbox(open_store(url)).count("r3") == 0

    same_event = [owner_changed("platform", partner_contact=ALICE, id="o4"), renewal("c4", id="r4")]
    assert meanwhile(same_event, [renewal("c4", id="r4")]) == (
        ["owner.changed", "message.duplicate_event"],
        ["renewal.notification_requested"],
    )
    assert slow.decided_again == 1


def test_an_uncommitted_newer_change_blocks_the_older_write_which_then_changes_nothing(
    postgres_url: str,
) -> None:
    """PostgreSQL: while a newer setting is written but not committed, the older batch's write
    waits on the row; when the newer commits, the older one finds it newer and leaves it."""
    import psycopg

    store_at(postgres_url)
    holder = psycopg.connect(postgres_url, autocommit=True)
    holder.execute("BEGIN")
    holder.execute(
        "INSERT INTO owner_settings VALUES ('p1', '', 'partner', NULL, %s, 'new')", (2_000_000_000_000_000,)
    )
    outcomes: list[str] = []
    older = processor_over(open_store(postgres_url))
    old_event = owner_changed("platform", id="old", time="2026-11-20T10:00:00+00:00")
    thread = threading.Thread(
        target=lambda: outcomes.extend(r.outcome for r in older.process([delivery(old_event)]))
    )
    thread.start()
    thread.join(0.5)
    assert thread.is_alive(), "the older write should be waiting for the row lock"
    holder.execute("COMMIT")
    thread.join(10)
    assert outcomes == ["owner.stale_ignored"]
    row = holder.execute("SELECT event_id FROM owner_settings WHERE partner_id = 'p1'").fetchone()
    assert row == ("new",)
