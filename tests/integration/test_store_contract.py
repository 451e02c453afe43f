"""The store contract, written once and run against every backend.

`ProjectionContract` is what the domain relies on, and runs against the in-memory fake of the
unit tests, the batch's in-memory working set, and both SQL stores (each write committed and
read back by another connection). Beyond that, each part of the SQL store has its contract, run
over SQLite and PostgreSQL alike (`store_url`): the connection's transactions, the projection's
rows with the inbox and crash counts, the outbox across workers, retention, and migrations.
`TestSqliteStore` and `TestPostgresStore` hold what only one backend does.
"""

import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import psycopg
import pytest

from events import Contact
from handlers import OwnerSetting, Projection, ReminderKey, SettingKey, Stamp, Versioned
from tests.fakes import InMemoryProjection
from worker.store import (
    SCHEMA_VERSION,
    OutboxRow,
    SchemaTooNew,
    SchemaTooOld,
    SqlStore,
    StoreUnavailable,
    WorkingSet,
    Written,
    open_store,
)
from worker.store.schema import MIGRATIONS

ROW = OutboxRow("n-1", "evt-1", "notification.requested.both", b'{"id": "n-1"}')
ALICE = Contact(email="alice@partner.example")
PLATFORM = Versioned(OwnerSetting("platform", None), Stamp(1, "a"))


class Committed:
    """A Projection over a SQL store where every call is a transaction of its own: a batch's
    working set that is written back and committed, then read by a fresh connection."""

    def __init__(self, url: str) -> None:
        self._url = url

    def _read(self) -> Iterator[WorkingSet]:
        store = open_store(self._url)
        try:
            with store.transaction() as transaction:
                yield WorkingSet(transaction)
        finally:
            store.close()

    def _write(self, change: Callable[[WorkingSet], object]) -> object:
        store = open_store(self._url)
        try:
            with store.transaction() as transaction:
                work = WorkingSet(transaction)
                result = change(work)
                changes = work.changes()
                return result and set(changes.reminders) <= transaction.write(changes).reminders
        finally:
            store.close()

    def setting(self, key: SettingKey) -> Versioned[OwnerSetting] | None:
        for work in self._read():
            return work.setting(key)
        return None

    def put_setting(self, key: SettingKey, setting: Versioned[OwnerSetting]) -> None:
        self._write(lambda work: work.put_setting(key, setting) or True)

    def settings_for(self, partner_id: str, client_id: str):  # type: ignore[no-untyped-def]
        for work in self._read():
            return work.settings_for(partner_id, client_id)
        return None

    def decision_maker(self, client_id: str) -> Versioned[Contact] | None:
        for work in self._read():
            return work.decision_maker(client_id)
        return None

    def remember_decision_maker(self, client_id: str, contact: Versioned[Contact]) -> None:
        self._write(lambda work: work.remember_decision_maker(client_id, contact) or True)

    def claim_reminder(self, key: ReminderKey, notification_id: str) -> bool:
        return bool(self._write(lambda work: work.claim_reminder(key, notification_id)))


class ProjectionContract:
    """What every Projection does; subclasses provide `projection`."""

    projection: Projection

    def test_settings_round_trip_and_can_be_cleared_keeping_their_stamp(self) -> None:
        """A setting comes back as stored; a cleared override is remembered with its stamp."""
        key = SettingKey("p1", "c1")
        self.projection.put_setting(key, Versioned(OwnerSetting("partner", ALICE), Stamp(1, "a")))
        assert self.projection.setting(key) == Versioned(OwnerSetting("partner", ALICE), Stamp(1, "a"))
        self.projection.put_setting(key, Versioned(None, Stamp(2, "b")))
        assert self.projection.setting(key) == Versioned(None, Stamp(2, "b"))
        assert self.projection.setting(SettingKey("p1", None)) is None

    def test_settings_for_reads_the_override_and_the_default_together(self) -> None:
        """One look-up returns (Override(P, C), Default(P)), each None when unset."""
        assert self.projection.settings_for("p1", "c1") == (None, None)
        self.projection.put_setting(SettingKey("p1", None), PLATFORM)
        assert self.projection.settings_for("p1", "c1") == (None, PLATFORM)
        self.projection.put_setting(SettingKey("p1", "c1"), PLATFORM)
        assert self.projection.settings_for("p1", "c1") == (PLATFORM, PLATFORM)
        assert self.projection.settings_for("p1", "c2") == (None, PLATFORM)
        assert self.projection.settings_for("p2", "c1") == (None, None)

    def test_the_newer_decision_maker_is_kept_whatever_the_order(self) -> None:
        """Last writer wins by time, then by event id compared by code point (not by locale)."""
        old, new = Contact(email="old@client.example"), Contact(email="new@client.example")
        self.projection.remember_decision_maker("c1", Versioned(new, Stamp(10, "e")))
        self.projection.remember_decision_maker("c1", Versioned(old, Stamp(9, "z")))
        assert self.projection.decision_maker("c1") == Versioned(new, Stamp(10, "e"))
        self.projection.remember_decision_maker("c2", Versioned(new, Stamp(10, "a")))
        self.projection.remember_decision_maker(
            "c2", Versioned(old, Stamp(10, "B"))
        )  # "B" < "a" by code point
        assert self.projection.decision_maker("c2") == Versioned(new, Stamp(10, "a"))
        self.projection.remember_decision_maker("c2", Versioned(old, Stamp(10, "b")))
        assert self.projection.decision_maker("c2") == Versioned(old, Stamp(10, "b"))

    def test_a_reminder_is_claimed_once(self) -> None:
        """The same (client, date, days) is claimed once; another day count is another reminder."""
        key = ReminderKey("c1", date(2026, 12, 20), 30)
        assert self.projection.claim_reminder(key, "n-1") is True
        assert self.projection.claim_reminder(key, "n-2") is False
        assert self.projection.claim_reminder(key._replace(days_until_renewal=7), "n-3") is True


class TestInMemoryFake(ProjectionContract):
    @pytest.fixture(autouse=True)
    def _projection(self) -> None:
        self.projection = InMemoryProjection()


class TestWorkingSetAlone(ProjectionContract):
    @pytest.fixture(autouse=True)
    def _projection(self) -> None:
        self.projection = WorkingSet()


class TestSqliteProjection(ProjectionContract):
    @pytest.fixture(autouse=True)
    def _projection(self, tmp_path: Path) -> None:
        url = f"sqlite:///{tmp_path / 'renewals.db'}"
        open_store(url).migrate()
        self.projection = Committed(url)  # type: ignore[assignment]


class TestPostgresProjection(ProjectionContract):
    @pytest.fixture(autouse=True)
    def _projection(self, postgres_url: str) -> None:
        open_store(postgres_url).migrate()
        self.projection = Committed(postgres_url)  # type: ignore[assignment]


class OnEveryBackend:
    """A part of the store, over each backend in turn (`store_url`)."""

    url: str

    @pytest.fixture(autouse=True)
    def _url(self, store_url: str) -> None:
        self.url = store_url

    def open(self, migrate: bool = True) -> SqlStore:
        store = open_store(self.url)
        if migrate:
            store.migrate()
        return store


class TestConnectionContract(OnEveryBackend):
    """Transactions: all or nothing, and a read-only one that never waits for a batch."""

    def test_a_transaction_rolls_back_as_a_whole(self) -> None:
        """An exception inside the transaction leaves no trace of any of its writes."""
        store = self.open()
        with pytest.raises(RuntimeError), store.transaction() as transaction:
            transaction.record_events(["evt-1"], 1)
            transaction.enqueue([ROW], 1)
            raise RuntimeError("boom")
        with store.transaction() as transaction:
            assert transaction.record_events(["evt-1"], 2) == {"evt-1"}
        assert store.claim_orphans(now_us=10**18, grace_us=0, limit=10) == []

    def test_a_read_only_transaction_reads_while_a_batch_holds_its_writes_open(self) -> None:
        """A read-only transaction sees what was committed, not a batch still open in another
        connection, and does not wait for it (on SQLite the batch holds the write lock)."""
        key = SettingKey("p1", "c1")
        with self.open().transaction() as transaction:
            transaction.write_settings({key: PLATFORM})
        writer, reader = self.open(), open_store(self.url, lock_timeout=0.2)
        with writer.transaction() as batch:
            batch.write_settings({key: Versioned(None, Stamp(2, "b"))})
            with reader.read_only() as transaction:
                assert transaction.settings([key]) == {key: PLATFORM}


class TestProjectionStoreContract(OnEveryBackend):
    """The inbox and the projection's rows, as a batch reads and writes them."""

    def test_the_inbox_tells_fresh_events_from_processed_ones(self) -> None:
        """record_events returns the ids not seen before, across transactions and connections;
        a forgotten id is fresh again."""
        with self.open().transaction() as transaction:
            assert transaction.record_events(["e2", "e1", "e1"], 1) == {"e1", "e2"}
            assert transaction.record_events(["e1", "e3"], 1) == {"e3"}
        with self.open().transaction() as transaction:
            assert transaction.record_events(["e1", "e2", "e3", "e4"], 2) == {"e4"}
            transaction.forget_events(["e2"])
        with self.open().transaction() as transaction:
            assert transaction.record_events(["e2"], 3) == {"e2"}

    def test_a_setting_is_only_written_over_an_older_stamp(self) -> None:
        """write_settings replaces a stored setting only when its stamp is newer, and says which."""
        older, newer = (
            Versioned(None, Stamp(5, "a")),
            Versioned(OwnerSetting("partner", ALICE), Stamp(5, "b")),
        )
        key, other = SettingKey("p1", "c1"), SettingKey("p1", None)
        with self.open().transaction() as transaction:
            assert transaction.write_settings({key: newer, other: older}) == {key, other}
            assert transaction.write_settings({key: older, other: newer}) == {other}
            assert transaction.settings([key, other, SettingKey("p2", None)]) == {
                key: newer,
                other: newer,
                SettingKey("p2", None): None,
            }

    def test_reminder_claims_report_only_the_new_ones(self) -> None:
        """claim_reminders returns the keys that were not claimed before; reminders() reads them."""
        first, second = ReminderKey("c1", date(2026, 12, 20), 30), ReminderKey("c1", date(2026, 12, 20), 7)
        with self.open().transaction() as transaction:
            assert transaction.claim_reminders({first: "n-1"}) == {first}
            assert transaction.claim_reminders({first: "n-9", second: "n-2"}) == {second}
            assert transaction.reminders([first, second, first._replace(client_id="c2")]) == {
                first: "n-1",
                second: "n-2",
                first._replace(client_id="c2"): None,
            }

    def test_a_batch_writes_back_what_its_working_set_changed(self) -> None:
        """write() stores a working set's changes with the backend's strategy and reports every
        setting and claim as standing when nobody else wrote meanwhile; a fresh connection
        reads them back."""
        key, claim = SettingKey("p1", None), ReminderKey("c1", date(2026, 12, 20), 30)
        store = self.open()
        with store.transaction() as transaction:
            work = WorkingSet(transaction)
            work.put_setting(key, PLATFORM)
            work.remember_decision_maker("c1", Versioned(ALICE, Stamp(3, "e")))
            assert work.claim_reminder(claim, "n-1")
            assert transaction.write(work.changes()) == Written({key}, {claim})
        with self.open().read_only() as transaction:
            assert transaction.settings([key]) == {key: PLATFORM}
            assert transaction.decision_makers(["c1"]) == {"c1": Versioned(ALICE, Stamp(3, "e"))}
            assert transaction.reminders([claim]) == {claim: "n-1"}

    def test_crash_counts_accumulate_and_can_be_forgotten(self) -> None:
        """note_attempt counts each start at a suspect message, across transactions."""
        store = self.open()
        for expected in (1, 2, 3):
            with store.transaction() as transaction:
                assert transaction.note_attempt("k", expected) == expected
        store.forget_attempts("k")
        with store.transaction() as transaction:
            assert transaction.note_attempt("k", 9) == 1


class TestOutboxContract(OnEveryBackend):
    """The outbox across crashes and workers."""

    def test_outbox_rows_survive_a_crash_and_are_claimed_by_one_worker_after_the_grace(self) -> None:
        """A process killed (SIGKILL) right after its commit leaves its row; no worker takes it
        within the grace period; after it, one worker claims it and another finds nothing."""
        script = textwrap.dedent(
            f"""
            import os, signal
            from worker.store import OutboxRow, open_store
            store = open_store({self.url!r})
            with store.transaction() as transaction:
                transaction.enqueue([OutboxRow("n-1", "evt-1", "notification.requested.both", b'{{"id": "n-1"}}')], 1000)
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
        self.open()
        crashed = subprocess.run([sys.executable, "-c", script], capture_output=True)
        assert crashed.returncode == -9, crashed.stderr
        one, two = self.open(), self.open()
        assert one.claim_orphans(now_us=1500, grace_us=1000, limit=10) == []  # still within the grace
        [claimed] = one.claim_orphans(now_us=2000, grace_us=1000, limit=10)
        assert claimed == ROW.with_seq(claimed.seq or 0)
        assert two.claim_orphans(now_us=2500, grace_us=1000, limit=10) == []  # claimed for a grace period
        assert two.unsent([claimed.seq or 0]) == [claimed]
        two.delete_confirmed([claimed.seq or 0])
        assert one.unsent([claimed.seq or 0]) == []

    def test_enqueued_rows_get_their_place_in_the_outbox(self) -> None:
        """enqueue returns each row with its seq; unsent reads them back in that order."""
        store = self.open()
        rows = [OutboxRow(f"n-{i}", f"e-{i}", "notification.requested.both", b"{}") for i in range(3)]
        with store.transaction() as transaction:
            queued = transaction.enqueue(rows, 1)
        assert [row.notification_id for row in queued] == ["n-0", "n-1", "n-2"]
        assert store.unsent([row.seq or 0 for row in reversed(queued)]) == queued

    def test_a_row_set_aside_is_kept_with_its_reason_and_never_handed_out_again(self) -> None:
        """set_aside keeps the row and its reason; unsent, claim_orphans and outbox_stats no longer see it, the rows around it are untouched."""
        store = self.open()
        rows = [OutboxRow(f"n-{i}", f"e-{i}", "notification.requested.both", b"{}") for i in range(3)]
        with store.transaction() as transaction:
            queued = transaction.enqueue(rows, 1)
        seqs = [row.seq or 0 for row in queued]
        store.set_aside(seqs[1], "correlation_id is 258 bytes")
        assert store.set_aside_rows() == [(queued[1], "correlation_id is 258 bytes")]
        assert store.unsent(seqs) == [queued[0], queued[2]]
        assert store.outbox_stats() == (2, 1)
        assert store.claim_orphans(now_us=10**6, grace_us=0, limit=10) == [queued[0], queued[2]]
        store.delete_confirmed([seqs[0], seqs[2]])
        assert store.outbox_stats() == (0, None) and len(store.set_aside_rows()) == 1


class TestRetentionContract(OnEveryBackend):
    """What the worker keeps only for a while goes, a bounded chunk at a time."""

    def test_pruning_deletes_only_what_expired_a_chunk_at_a_time(self) -> None:
        """Old inbox entries, reminder keys of past renewals and old crash counts go, at most
        `limit` of each per call; everything newer stays."""
        store = self.open()
        with store.transaction() as transaction:
            transaction.record_events([f"old-{i}" for i in range(5)], 100)
            transaction.record_events(["new"], 10_000)
            transaction.claim_reminders(
                {
                    ReminderKey("c1", date(2026, 1, 1), 30): "n-1",
                    ReminderKey("c1", date(2027, 1, 1), 30): "n-2",
                }
            )
            transaction.note_attempt("crash", 100)
        assert store.prune(processed_before_us=5_000, renewals_before=date(2026, 6, 1), limit=3) == 3 + 1 + 1
        assert store.prune(processed_before_us=5_000, renewals_before=date(2026, 6, 1), limit=3) == 2
        with store.transaction() as transaction:
            assert transaction.record_events(["old-0", "new"], 20_000) == {"old-0"}
            assert transaction.reminders([ReminderKey("c1", date(2027, 1, 1), 30)]) != {}


class TestMigrationsContract(OnEveryBackend):
    """The schema's version: migrated once, brought up to date, or refused."""

    def test_an_empty_store_is_migrated_once_and_reports_its_version(self) -> None:
        """migrate() applies every migration on an empty store, then finds nothing to do."""
        store = self.open(migrate=False)
        assert store.schema_version() == 0
        assert store.migrate() == (0, SCHEMA_VERSION)
        assert store.migrate() == (SCHEMA_VERSION, SCHEMA_VERSION)
        store.check_schema()

    def test_an_older_schema_is_brought_up_to_date(self) -> None:
        """A store at version 1 (the first release's tables) is migrated to the latest, keeping its rows."""
        store = self.open(migrate=False)
        with store.transaction():
            store.execute(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL,"
                " applied_at_us BIGINT NOT NULL)"
            )
            for statement in getattr(MIGRATIONS[0], store.kind if store.kind == "sqlite" else "postgres"):
                store.execute(statement)
            store.execute("INSERT INTO schema_version VALUES (1, 'first', 0)")
            store.execute("INSERT INTO inbox (event_id, processed_at_us) VALUES ('kept', 1)")
        with pytest.raises(SchemaTooOld, match="version 1, older"):
            store.check_schema()
        assert store.migrate() == (1, SCHEMA_VERSION)
        with store.transaction() as transaction:
            assert transaction.record_events(["kept"], 2) == set()

    def test_a_newer_schema_is_refused_naming_both_versions(self) -> None:
        """A store migrated by a later release is not touched: one line names both versions."""
        store = self.open()
        with store.transaction():
            store.execute(
                "INSERT INTO schema_version VALUES (?, 'from the future', 0)", (SCHEMA_VERSION + 1,)
            )
        for attempt in (store.check_schema, store.migrate):
            with pytest.raises(SchemaTooNew) as refused:
                attempt()
            assert f"version {SCHEMA_VERSION + 1}" in str(refused.value)
            assert f"version {SCHEMA_VERSION} " in str(refused.value)


class TestSqliteStore:
    """What only SQLite does."""

    @pytest.fixture(autouse=True)
    def _url(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'renewals.db'}"

    def open(self) -> SqlStore:
        store = open_store(self.url)
        store.migrate()
        return store

    def test_the_file_is_in_wal_mode(self) -> None:
        """WAL lets readers (the CLI) look while the worker writes."""
        store = self.open()
        assert store.execute("PRAGMA journal_mode").fetchone()[0] == "wal"

    def test_a_read_only_transaction_does_not_wait_for_the_write_lock(self) -> None:
        """While another connection holds the write lock (BEGIN IMMEDIATE), a read-only
        transaction reads at once, where a batch waits out the busy timeout and gives up."""
        key = SettingKey("p1", None)
        with self.open().transaction() as transaction:
            transaction.write_settings({key: PLATFORM})
        holder = self.open()
        store = open_store(self.url, lock_timeout=0.2)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with store.read_only() as transaction:
                assert transaction.settings([key]) == {key: PLATFORM}
            assert store.schema_version() == SCHEMA_VERSION
            with pytest.raises(StoreUnavailable, match="locked"), store.transaction():
                pass
        finally:
            holder.execute("ROLLBACK")


class TestPostgresStore:
    """What only PostgreSQL does."""

    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url

    def test_a_write_in_a_read_only_transaction_is_refused(self) -> None:
        """The database itself refuses a write in a read-only transaction, and nothing of it stays."""
        store = open_store(self.url)
        store.migrate()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), store.read_only() as transaction:
            transaction.record_events(["evt-1"], 1)
        with store.transaction() as transaction:
            assert transaction.record_events(["evt-1"], 2) == {"evt-1"}
