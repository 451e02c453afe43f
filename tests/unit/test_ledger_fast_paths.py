"""SQLite's ledger writes (prepared statements over every row) store exactly what the set-based
writes store, for the same rows: the reminders, the owner changes and the confirm stamps."""

import json

import pytest

from support.messages import contact, owner_changed, renewal
from worker.messaging import Delivery
from worker.service.outbox import Outbox
from worker.service.processing import BatchProcessor
from worker.settings import Settings
from worker.store import OutboxRow, SqlStore
from worker.store.ledger_writes import (
    HISTORY_COLUMNS,
    LEDGER_COLUMNS,
    Confirmed,
    EachLedgerWrites,
    LedgerOutOfStep,
    LedgerWrites,
    runs,
)
from worker.store.sqlite import SqliteBackend

DORA = contact("dora", "client.example")


def delivery(message: dict[str, object], tag: int) -> Delivery:
    key = "owner.changed" if message["type"] == "OwnerChanged" else "renewal.approaching"
    return Delivery(json.dumps(message).encode(), {"content_type": "application/json"}, "x", key, tag)


def batch_rows() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Ledger and history rows of a mixed batch, as the worker wrote them."""
    store = SqlStore(SqliteBackend(":memory:"))
    store.migrate()
    processor = BatchProcessor(
        Settings(), store, outbox=Outbox(store, grace_s=30, sweep_every_s=10), encoded_size=len
    )
    messages = [
        owner_changed("platform", partner_contact=contact("alice"), id="o1"),
        owner_changed("partner", client_id="c2", partner_contact=contact("bob"), id="o2"),
        *(renewal(f"c{n}", decision_maker=DORA if n % 2 else None, id=f"r{n}") for n in range(6)),
        renewal("c1", decision_maker=DORA, id="r1-again"),
        renewal("c9", None, id="r-nobody"),
    ]
    processor.process([delivery(message, tag) for tag, message in enumerate(messages, 1)])
    ledger = ", ".join(name for name, _type in LEDGER_COLUMNS)
    history = ", ".join(name for name, _type in HISTORY_COLUMNS)
    return (
        store.execute(f"SELECT {ledger} FROM reminder_ledger ORDER BY seq").fetchall(),
        store.execute(f"SELECT {history} FROM owner_history ORDER BY seq").fetchall(),
    )


def test_each_row_writes_store_what_the_set_based_writes_store() -> None:
    """The same ledger rows, owner changes and confirms through both strategies leave the same tables."""
    reminders, changes = batch_rows()
    assert len(reminders) == 8 and len(changes) == 2
    notified = sorted({row[19] for row in reminders if row[6] == "notified"})
    tables = {}
    for name in ("each", "set"):
        backend = SqliteBackend(":memory:")
        store = SqlStore(backend)
        store.migrate()
        writes = EachLedgerWrites() if name == "each" else LedgerWrites(backend)
        with store.transaction() as transaction:
            numbered = writes.reminders(store, reminders)
            assert sorted(numbered) == notified
            writes.owner_changes(store, changes)
            queued = transaction.enqueue([OutboxRow(n, "c", "k", b"{}") for n in notified], 5, numbered)
            seqs = [row.seq or 0 for row in queued]
            together = [*seqs[2:-2], seqs[-1]]  # confirmed at one moment, all but the row between
            writes.confirmed(
                store,
                [
                    Confirmed(seqs[0], None, 900),
                    Confirmed(seqs[1], 150, 250),
                    *(Confirmed(s, 100, 200) for s in together),
                ],
            )
        tables[name] = [
            sorted(store.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
            for table in ("reminder_ledger", "owner_history")
        ]
    assert tables["each"] == tables["set"]
    stamped = [row for row in tables["each"][0] if row[-4] is not None]  # confirmed_at_us
    assert len(notified) >= 5 and len(stamped) == len(notified) - 1


def test_confirmed_rows_are_stamped_in_runs_of_rows_confirmed_together() -> None:
    """A run holds consecutive rows published and confirmed at the same moments, and no other
    row: a gap or another moment starts a new one, and a row confirmed twice counts once."""
    assert runs([Confirmed(s, 100, 200) for s in (7, 5, 6, 6)]) == [(5, 7, 100, 200)]
    assert runs([Confirmed(1, 100, 200), Confirmed(3, 100, 200)]) == [(1, 1, 100, 200), (3, 3, 100, 200)]
    assert runs([Confirmed(1, None, 200), Confirmed(2, 100, 200), Confirmed(3, 100, 201)]) == [
        (1, 1, None, 200),
        (2, 2, 100, 200),
        (3, 3, 100, 201),
    ]
    assert runs([]) == []


def test_ledger_rows_numbered_out_of_step_fail_the_batch_rather_than_stamp_the_wrong_rows() -> None:
    """SQLite numbers a row one more than the largest, except past the largest rowid, where it
    picks numbers at random: the rows a confirm would stamp are then not known, and the batch
    fails (to be retried) instead of pointing its notifications at other reminders' rows."""
    reminders, _changes = batch_rows()
    store = SqlStore(SqliteBackend(":memory:"))
    store.migrate()
    with store.transaction():
        store.execute(
            "INSERT INTO reminder_ledger (seq, event_id, partner_id, client_id, renewal_date,"
            " days_until_renewal, handled_at_us, outcome) VALUES (?, 'e', 'p', 'c', '2027-01-04', 1, 1, 'x')",
            (2**63 - 1,),
        )
    with pytest.raises(LedgerOutOfStep, match="not the 8 rows just inserted"), store.transaction():
        EachLedgerWrites().reminders(store, reminders)
    assert store.execute("SELECT count(*) FROM reminder_ledger").fetchone()[0] == 1
