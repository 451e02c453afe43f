"""The reminder ledger and the owner history as batches write them, on both stores: every rule
table row, duplicates, dead letters, replays, owner changes won and lost, confirms, retention."""

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from events import OwnerChanged
from handlers import HANDLERS
from support.messages import contact, owner_changed, renewal
from tests.integration.test_processing import Paused, delivery, processor_over, store_at
from tests.unit.test_domain_document import RULE_ROWS, row_id
from worker.messaging import REPLAY_OF_LETTER, REPLAY_OPERATION, Delivery
from worker.service.outbox import Outbox
from worker.service.processing import BatchProcessor
from worker.service.retention import Retention
from worker.settings import Settings
from worker.store import SqlStore, open_store

DORA = contact("dora", "client.example")
ALICE = contact("alice")
BOB = contact("bob")
T_OWNER = "2026-11-19T08:00:00+00:00"


def ledger(store: SqlStore, client_id: str | None = None) -> list[dict[str, Any]]:
    """Every ledger row (of one client), oldest first, as a dict by column."""
    where, params = ("WHERE client_id = ?", (client_id,)) if client_id else ("", ())
    cursor = store.execute(f"SELECT * FROM reminder_ledger {where} ORDER BY seq", params)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def history(store: SqlStore) -> list[dict[str, Any]]:
    cursor = store.execute("SELECT * FROM owner_history ORDER BY seq")
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def micros(text: str) -> int:
    return int(datetime.fromisoformat(text).astimezone(UTC).timestamp() * 1_000_000)


@pytest.mark.parametrize("row", RULE_ROWS, ids=row_id)
def test_each_rule_table_row_leaves_its_ledger_row(store_url: str, row: dict[str, str]) -> None:
    """The rule table's row, set up as docs/domain.md says, leaves one ledger row naming that
    row, its recipients, the setting and the events behind them; the row naming nobody leaves a
    dead-letter row."""
    store = store_at(store_url)
    processor = processor_over(store)
    number = RULE_ROWS.index(row) + 1
    contact_ = ALICE if row["partner contact"] == "set" else None
    setting = owner_changed(row["owner"], partner_contact=contact_, id=f"own-{number}", time=T_OWNER)
    assert processor.process([delivery(setting)])[0].outcome == "owner.changed"
    makers = {"yes": [DORA], "no": [None], "any": [DORA, None]}[row["decision maker known"]]
    for index, maker in enumerate(makers):
        client = f"c{number}-{index}"
        processor.process([delivery(renewal(client, decision_maker=maker, id=f"r-{client}"))])
        [found] = ledger(store, client)
        nobody = row["to"].startswith("nobody")
        expected_to = {"decision maker": DORA, "partner contact": ALICE}.get(row["to"])
        expected_cc = {"partner contact": ALICE}.get(row["cc"])
        assert found["event_id"] == f"r-{client}"
        assert (found["partner_id"], found["renewal_date"], found["days_until_renewal"]) == (
            "p1",
            "2026-12-20",
            30,
        )
        assert found["rule_row"] == number
        assert (found["owner"], found["owner_scope"], found["resolved_from"]) == (
            row["owner"],
            "partner",
            "partner_default",
        )
        assert (found["owner_event_id"], found["owner_changed_at_us"]) == (f"own-{number}", micros(T_OWNER))
        assert found["decision_maker"] == (None if maker is None else DORA["email"])
        assert found["decision_maker_event_id"] == (None if maker is None else f"r-{client}")
        if nobody:
            assert (found["outcome"], found["reason"], found["notification_id"]) == (
                "no_notification",
                "dead_letter",
                None,
            )
            assert json.loads(found["detail"]) == {"dead_letter_reason": "no_recipient"}
            continue
        assert (found["outcome"], found["reason"]) == ("notified", None)
        assert found["to_address"] == (None if expected_to is None else expected_to["email"])
        assert found["cc_address"] == (None if expected_cc is None else expected_cc["email"])
        fallback = None if row["fallback"] in ("-", "\N{EN DASH}") else row["fallback"]
        assert found["fallback"] == fallback
        assert found["notification_id"] is not None and found["published_at_us"] is None


def test_a_repeated_reminder_says_duplicate_and_names_the_notification_sent(store_url: str) -> None:
    """Another event id for a reminder already sent leaves a no_notification row, reason
    duplicate, with the notification the first one sent; a redelivered event id adds nothing."""
    store = store_at(store_url)
    processor = processor_over(store)
    processor.process([delivery(renewal("c1", None, decision_maker=DORA, id="r1"))])
    outcomes = processor.process(
        [
            delivery(renewal("c1", None, decision_maker=DORA, id="r2"), 1),
            delivery(renewal("c1", None, decision_maker=DORA, id="r1"), 2),
        ]
    )
    assert [r.outcome for r in outcomes] == ["renewal.duplicate_reminder", "message.duplicate_event"]
    first, second = ledger(store)
    assert (first["outcome"], second["outcome"], second["reason"]) == (
        "notified",
        "no_notification",
        "duplicate",
    )
    assert second["notification_id"] == first["notification_id"] and second["to_address"] is None
    assert (first["partner_id"], first["owner_scope"], first["owner_event_id"]) == ("", "default", None)


def test_a_notification_waiting_when_the_store_is_migrated_is_still_stamped_at_its_confirm(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 11 drops the notification index a confirm used to find its ledger row by; the
    rows waiting in the outbox then are numbered from it first, so their confirms still stamp."""
    from worker.store import migrations, schema

    before = next(m for m in schema.MIGRATIONS if m.version == 11)
    monkeypatch.setattr(migrations, "MIGRATIONS", schema.MIGRATIONS[: schema.MIGRATIONS.index(before)])
    monkeypatch.setattr(migrations, "LATEST", before.version - 1)
    store = store_at(store_url)
    with store.transaction():  # what the release before wrote: a notified ledger row, its outbox row
        for outcome, notification in (("no_notification", "n-0"), ("notified", "n-1"), ("notified", "n-2")):
            store.execute(
                "INSERT INTO reminder_ledger (event_id, partner_id, client_id, renewal_date,"
                " days_until_renewal, handled_at_us, outcome, notification_id)"
                " VALUES (?, 'p', 'c1', '2027-01-04', 7, 1, ?, ?)",
                (f"e-{notification}", outcome, notification),
            )
        store.execute(
            "INSERT INTO outbox (notification_id, correlation_id, routing_key, body, created_at_us)"
            " VALUES ('n-1', 'e-n-1', 'k', ?, 1)",
            (b"{}",),
        )
    monkeypatch.undo()
    assert store.migrate() == (10, schema.LATEST)

    notified = next(row for row in ledger(store) if row["notification_id"] == "n-1")
    [(seq, numbered)] = store.execute("SELECT seq, ledger_seq FROM outbox").fetchall()
    assert numbered == notified["seq"]
    outbox = Outbox(store, grace_s=30, sweep_every_s=10)
    outbox.sent([seq])
    outbox.confirmed([seq])
    BatchProcessor(Settings(), store, outbox=outbox, encoded_size=len).flush()
    stamped = {row["notification_id"]: row["confirmed_at_us"] for row in ledger(store)}
    assert stamped["n-1"] is not None and stamped["n-0"] is None and stamped["n-2"] is None


def test_the_confirm_stamps_when_the_notification_was_published_and_confirmed(store_url: str) -> None:
    """The outbox rows' confirm, deleted by the next transaction, sets published_at_us and
    confirmed_at_us on the rows that notified, and only on them."""
    store = store_at(store_url)
    outbox = Outbox(store, grace_s=30, sweep_every_s=10)
    processor = BatchProcessor(Settings(), store, outbox=outbox, encoded_size=len)
    results = processor.process(
        [
            delivery(renewal("c1", None, decision_maker=DORA, id="r1"), 1),
            delivery(renewal("c2", None, id="r2"), 2),
        ]
    )
    seqs = [r.outbox_seq for r in results if r.outbox_seq is not None]
    before = datetime.now(UTC).timestamp() * 1_000_000
    outbox.sent(seqs)
    outbox.confirmed(seqs)
    processor.flush()
    notified, dead = ledger(store)
    assert (dead["reason"], dead["published_at_us"], dead["confirmed_at_us"]) == ("dead_letter", None, None)
    assert before <= notified["published_at_us"] <= notified["confirmed_at_us"]
    assert store.execute("SELECT count(*) FROM outbox").fetchone()[0] == 0


def test_a_lost_owner_change_is_in_the_history_as_lost_to_the_newer_one(store_url: str) -> None:
    """A newer change, then an older one for the same key: the first won (before: nothing,
    after: partner and Bob), the second lost to the first; a repeated one adds nothing."""
    store = store_at(store_url)
    processor = processor_over(store)
    newer = owner_changed(
        "partner", client_id="c1", partner_contact=BOB, id="o-new", time="2026-11-20T10:00:00+00:00"
    )
    older = owner_changed("platform", client_id="c1", id="o-old", time="2026-11-20T09:00:00+00:00")
    processor.process([delivery(newer)])
    assert processor.process([delivery(older)])[0].outcome == "owner.stale_ignored"
    won, lost = history(store)
    assert (won["event_id"], won["won"], won["lost_to_event_id"], won["owner_before"]) == (
        "o-new",
        1,
        None,
        None,
    )
    assert (won["owner_after"], json.loads(won["contact_after"])["email"]) == ("partner", BOB["email"])
    assert (won["partner_id"], won["client_id"], won["changed_at_us"]) == (
        "p1",
        "c1",
        micros("2026-11-20T10:00:00+00:00"),
    )
    assert (lost["event_id"], lost["won"], lost["lost_to_event_id"]) == ("o-old", 0, "o-new")
    assert (lost["owner_before"], lost["owner_after"], lost["contact_after"]) == ("partner", "platform", None)
    assert lost["received_at_us"] >= won["received_at_us"]


def test_a_change_and_its_successor_in_one_batch_both_won_each_with_its_before(store_url: str) -> None:
    """Two partner-wide changes in one batch: the second's before is the first's after."""
    store = store_at(store_url)
    processor = processor_over(store)
    processor.process(
        [
            delivery(
                owner_changed("partner", partner_contact=ALICE, id="o1", time="2026-11-20T09:00:00+00:00"), 1
            ),
            delivery(owner_changed("platform", id="o2", time="2026-11-20T10:00:00+00:00"), 2),
        ]
    )
    first, second = history(store)
    assert (first["client_id"], first["won"], second["won"]) == ("", 1, 1)
    assert (second["owner_before"], json.loads(second["contact_before"])["email"]) == (
        "partner",
        ALICE["email"],
    )


def test_a_reminder_after_an_owner_change_shows_the_new_owner_and_the_event_that_set_it(
    store_url: str,
) -> None:
    """The client's override, set by e-17, is what the next reminder's row names."""
    store = store_at(store_url)
    processor = processor_over(store)
    processor.process([delivery(renewal("c1", decision_maker=DORA, id="r1"))])
    change = owner_changed(
        "partner", client_id="c1", partner_contact=BOB, id="e-17", time="2026-11-20T10:00:00+00:00"
    )
    processor.process([delivery(change)])
    processor.process([delivery(renewal("c1", id="r2", days=7))])
    before, after = ledger(store, "c1")
    assert (before["owner"], before["owner_scope"], before["owner_event_id"]) == ("platform", "default", None)
    assert (after["owner"], after["owner_scope"], after["resolved_from"]) == (
        "partner",
        "client",
        "client_override",
    )
    assert (after["owner_event_id"], after["owner_changed_at_us"]) == (
        "e-17",
        micros("2026-11-20T10:00:00+00:00"),
    )
    assert (after["to_address"], after["rule_row"], after["decision_maker_event_id"]) == (
        BOB["email"],
        5,
        "r1",
    )


def replayed(message: dict[str, Any], headers: dict[str, Any]) -> Delivery:
    plain = delivery(message)
    properties = {**plain.properties, "application_headers": headers}
    return Delivery(plain.body, properties, plain.exchange, plain.routing_key, 1)


@pytest.mark.parametrize(
    ("letter", "operation", "expected"),
    [
        (42, "op-7", (42, "op-7")),
        ("43", None, (43, None)),
        ("not-a-number", 7, (None, None)),
        (-1, "", (None, None)),
    ],
)
def test_a_replayed_event_carries_its_letter_and_operation(
    store_url: str, letter: object, operation: object, expected: tuple[Any, Any]
) -> None:
    """The replay headers link the row to its dead letter and the operation that sent it; a
    header the replay tools could not have written links nothing."""
    store = store_at(store_url)
    headers = {REPLAY_OF_LETTER: letter} | ({} if operation is None else {REPLAY_OPERATION: operation})
    processor_over(store).process([replayed(renewal("c1", None, decision_maker=DORA, id="r1"), headers)])
    [row] = ledger(store)
    assert (row["letter_id"], row["replay_operation"]) == expected


def test_retention_prunes_old_rows_in_chunks_and_a_later_event_still_works(store_url: str) -> None:
    """Rows handled before LEDGER_RETENTION_DAYS go, a chunk per round, newer ones stay; the
    same reminder key, pruned from the ledger, is still handled as before."""
    store = store_at(store_url)
    processor = processor_over(store)
    processor.process(
        [delivery(renewal(f"c{n}", None, decision_maker=DORA, id=f"r{n}"), n) for n in range(5)]
    )
    processor.process([delivery(owner_changed("partner", partner_contact=ALICE, id="o1"))])
    with store.writing():
        store.execute("UPDATE reminder_ledger SET handled_at_us = 1 WHERE client_id <> 'c4'")
        store.execute("UPDATE owner_history SET received_at_us = 1")
    retention = Retention(store, Settings(ledger_retention_days=400), chunk=3)
    retention.next_round = 0.0
    assert retention.prune_if_due() >= 4  # three reminders and the owner change
    assert [row["client_id"] for row in ledger(store)] == ["c3", "c4"]
    retention.next_round = 0.0
    retention.prune_if_due()
    assert [row["client_id"] for row in ledger(store)] == ["c4"] and history(store) == []
    again = processor.process([delivery(renewal("c0", None, decision_maker=DORA, id="r0-again"))])
    assert again[0].outcome == "renewal.duplicate_reminder"
    assert [(row["event_id"], row["reason"]) for row in ledger(store, "c0")] == [("r0-again", "duplicate")]


def test_a_change_beaten_by_another_workers_commit_is_lost_to_the_change_that_stood(
    store_url: str,
) -> None:
    """Two workers: the older change read an empty key, the newer one committed meanwhile (on
    SQLite too: a batch decides before it takes the write lock); the older's history row is
    lost, to the newer's event id, which the batch could not have known when it decided."""
    store = store_at(store_url)
    paused = Paused()
    older = processor_over(open_store(store_url), {**HANDLERS, OwnerChanged: paused})
    newer = processor_over(open_store(store_url))
    old_event = owner_changed("platform", partner_contact=ALICE, id="old", time="2026-11-20T10:00:00+00:00")
    new_event = owner_changed("partner", partner_contact=BOB, id="new", time="2026-11-20T11:00:00+00:00")
    thread = threading.Thread(target=lambda: older.process([delivery(old_event)]))
    thread.start()
    assert paused.decided.wait(10)
    newer.process([delivery(new_event)])
    paused.release.set()
    thread.join(10)
    rows = {row["event_id"]: row for row in history(store)}
    assert (rows["new"]["won"], rows["new"]["lost_to_event_id"]) == (1, None)
    assert (rows["old"]["won"], rows["old"]["lost_to_event_id"], rows["old"]["owner_before"]) == (
        0,
        "new",
        None,
    )
