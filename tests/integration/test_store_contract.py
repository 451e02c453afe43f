"""The store contract, written once and run against every backend (SQLite and PostgreSQL)."""

import subprocess
import sys
import textwrap
from datetime import date

import pytest

from events import Contact
from handlers import OwnerSetting, ReminderKey, SettingKey, Stamp, Versioned
from worker.store import OutboxRow, SqlStore, open_store

ROW = OutboxRow("n-1", "evt-1", "notification.requested.both", b'{"id": "n-1"}')


class StoreContract:
    """Subclasses say how to get a fresh store URL; the tests are the same for all."""

    url: str

    def open(self) -> SqlStore:
        return open_store(self.url)

    def test_a_batch_is_one_transaction_that_rolls_back_as_a_whole(self) -> None:
        """An exception inside the batch leaves no trace of any of its writes."""
        store = self.open()
        with pytest.raises(RuntimeError), store.batch() as batch:
            batch.record_event("evt-1", 1)
            batch.enqueue(ROW, 1)
            raise RuntimeError("boom")
        with store.batch() as batch:
            assert batch.record_event("evt-1", 2) is True
        assert store.pending() == []

    def test_committed_writes_are_visible_to_another_connection(self) -> None:
        """Commit makes the batch durable for every reader."""
        with self.open().batch() as batch:
            batch.put_setting(
                SettingKey("p1", None),
                Versioned(OwnerSetting("partner", Contact(email="a@b.example")), Stamp(5, "e")),
            )
        other = self.open()
        with other.batch() as batch:
            stored = batch.setting(SettingKey("p1", None))
        assert stored == Versioned(OwnerSetting("partner", Contact(email="a@b.example")), Stamp(5, "e"))

    def test_the_inbox_detects_a_processed_event(self) -> None:
        """record_event is True once per event id, across batches and connections."""
        with self.open().batch() as batch:
            assert batch.record_event("evt-9", 1) is True
            assert batch.record_event("evt-9", 1) is False
        with self.open().batch() as batch:
            assert batch.record_event("evt-9", 2) is False

    def test_a_savepoint_undoes_one_message_and_keeps_the_rest(self) -> None:
        """A failing message inside a batch is rolled back alone."""
        store = self.open()
        with store.batch() as batch:
            batch.record_event("good", 1)
            with pytest.raises(ValueError), batch.savepoint():
                batch.record_event("bad", 1)
                raise ValueError("handler bug")
        with store.batch() as batch:
            assert batch.record_event("good", 2) is False
            assert batch.record_event("bad", 2) is True

    def test_settings_can_be_cleared_keeping_their_stamp(self) -> None:
        """A cleared override is remembered with its time, for last-writer-wins."""
        key = SettingKey("p1", "c1")
        with self.open().batch() as batch:
            batch.put_setting(key, Versioned(OwnerSetting("platform", None), Stamp(1, "a")))
            batch.put_setting(key, Versioned(None, Stamp(2, "b")))
            assert batch.setting(key) == Versioned(None, Stamp(2, "b"))
            assert batch.setting(SettingKey("p1", None)) is None

    def test_decision_makers_and_reminders_round_trip(self) -> None:
        """The remembered DM comes back with its stamp; a reminder is claimed once."""
        dora = Contact(email="dora@client.example", name="Dora")
        key = ReminderKey("c1", date(2026, 12, 20), 30)
        with self.open().batch() as batch:
            batch.remember_decision_maker("c1", Versioned(dora, Stamp(3, "x")))
            assert batch.decision_maker("c1") == Versioned(dora, Stamp(3, "x"))
            assert batch.claim_reminder(key, "n-1") is True
            assert batch.claim_reminder(key, "n-2") is False
            assert batch.claim_reminder(key._replace(days_until_renewal=7), "n-3") is True

    def test_the_newer_decision_maker_is_kept_whatever_the_order(self) -> None:
        """Last writer wins by time, then by event id compared by code point (not by locale)."""
        old, new = Contact(email="old@client.example"), Contact(email="new@client.example")
        with self.open().batch() as batch:
            batch.remember_decision_maker("c1", Versioned(new, Stamp(10, "e")))
            batch.remember_decision_maker("c1", Versioned(old, Stamp(9, "z")))
            assert batch.decision_maker("c1") == Versioned(new, Stamp(10, "e"))
            batch.remember_decision_maker("c2", Versioned(new, Stamp(10, "a")))
            batch.remember_decision_maker("c2", Versioned(old, Stamp(10, "B")))  # "B" < "a" by code point
            assert batch.decision_maker("c2") == Versioned(new, Stamp(10, "a"))
            batch.remember_decision_maker("c2", Versioned(old, Stamp(10, "b")))
            assert batch.decision_maker("c2") == Versioned(old, Stamp(10, "b"))

    def test_settings_for_reads_the_override_and_the_default_together(self) -> None:
        """One look-up returns (Override(P, C), Default(P)), each None when unset."""
        platform = Versioned(OwnerSetting("platform", None), Stamp(1, "a"))
        with self.open().batch() as batch:
            assert batch.settings_for("p1", "c1") == (None, None)
            batch.put_setting(SettingKey("p1", None), platform)
            assert batch.settings_for("p1", "c1") == (None, platform)
            batch.put_setting(SettingKey("p1", "c1"), platform)
            assert batch.settings_for("p1", "c1") == (platform, platform)
            assert batch.settings_for("p1", "c2") == (None, platform)
            assert batch.settings_for("p2", "c1") == (None, None)

    def test_outbox_rows_survive_a_crash_before_publishing(self) -> None:
        """A process killed (SIGKILL) right after its commit leaves the row for the next start."""
        script = textwrap.dedent(
            f"""
            import os, signal
            from worker.store import OutboxRow, open_store
            store = open_store({self.url!r})
            with store.batch() as batch:
                batch.enqueue(OutboxRow("n-1", "evt-1", "notification.requested.both", b'{{"id": "n-1"}}'), 1)
            os.kill(os.getpid(), signal.SIGKILL)
            """
        )
        crashed = subprocess.run([sys.executable, "-c", script], capture_output=True)
        assert crashed.returncode == -9, crashed.stderr
        store = self.open()
        assert store.pending() == [ROW]
        store.forget_sent(["n-1"])
        assert store.pending() == []


class TestSqliteStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _url(self, tmp_path) -> None:
        self.url = f"sqlite:///{tmp_path / 'renewals.db'}"

    def test_the_file_is_in_wal_mode(self) -> None:
        """WAL lets readers (the CLI) look while the worker writes."""
        store = self.open()
        assert store.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


class TestPostgresStore(StoreContract):
    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url
