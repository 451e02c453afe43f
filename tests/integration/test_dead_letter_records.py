"""The dead-letter records' contract, written once and run against SQLite and PostgreSQL:
idempotent inserts, exact round trips, filters and keyset pages, groups, history and notes,
archive, purge, retention, replay operations and their claims, and the audit."""

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from support.letters import T0, new_letter, spread
from worker.dead_letters.model import STATUSES, HistoryEntry, LetterFilter, fingerprint, normalised_detail
from worker.dead_letters.records import DeadLetterRecords, OperationBusy, UnknownOperation
from worker.store import SqlStore, open_store


class RecordsContract:
    url: str

    def records(self) -> DeadLetterRecords:
        store: SqlStore = open_store(self.url)
        store.migrate()
        return DeadLetterRecords(store)

    def test_the_same_letter_delivered_twice_is_one_row(self) -> None:
        """A redelivery (the broker's delivery counters changed, nothing else) inserts nothing."""
        records = self.records()
        letter = new_letter()
        again = replace(letter, headers={**letter.headers, "x-delivery-count": 3, "x-acquired-count": 4})
        assert records.insert([letter]) == 1
        assert self.records().insert([again, letter]) == 0
        assert records.count() == 1
        other = replace(letter, headers={**letter.headers, "x-failed-at": "2026-11-21T00:00:00.000+00:00"})
        assert records.insert([other]) == 1  # the same event failing again is another letter

    def test_body_properties_and_headers_come_back_exactly(self) -> None:
        """AMQP values JSON cannot hold (bytes, times, decimals, NaN, `$` keys) round-trip."""
        records = self.records()
        headers = {
            "bytes": b"\x00\xff",
            "when": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
            "price": Decimal("12.50"),
            "nan": float("inf"),
            "table": {"$b": "not a tag", "nested": [1, "two", None, True]},
            "nul": "a\x00b",
        }
        letter = new_letter(headers=headers, body=b"\xff\xfe not utf-8")
        records.insert([letter])
        [summary] = records.page().letters
        stored = records.get(summary.id)
        assert stored is not None
        assert stored.body == b"\xff\xfe not utf-8"
        assert stored.headers == letter.headers
        assert stored.properties == letter.properties
        assert stored.summary.event_id == letter.event_id and stored.summary.status == "new"

    def test_text_with_nul_and_lone_surrogates_is_stored(self) -> None:
        """Hostile text (PostgreSQL refuses NUL) is stored with a replacement character."""
        records = self.records()
        records.insert([new_letter(event_id="evt-\x00-\ud800", detail="bad \x00 detail")])
        [summary] = records.page().letters
        assert summary.detail == "bad \ufffd detail"

    def test_failure_times_utc_cannot_hold_are_stored_and_compared_exactly(self) -> None:
        """A header at the calendar's edges (9999-12-31T23:59:59-23:59, 0001-01-01T00:00:00+23:59)
        is stored, filtered and grouped without an overflow: the early one is handed out as the
        first moment a datetime holds, the late one (ahead of its receipt) as its receipt."""
        records = self.records()
        late = datetime.fromisoformat("9999-12-31T23:59:59.999-23:59")
        early = datetime.fromisoformat("0001-01-01T00:00:00+23:59")
        records.insert([new_letter(failed_at=late), new_letter(failed_at=early)])
        assert records.count(LetterFilter(since=datetime(9999, 12, 31, tzinfo=UTC))) == 0
        assert records.count(LetterFilter(until=datetime(1, 1, 2, tzinfo=UTC))) == 1
        first, last = records.page().letters
        assert first.failed_at == first.received_at
        assert last.failed_at == datetime.min.replace(tzinfo=UTC)
        assert sum(group.count for group in records.groups()) == 2

    def test_a_failure_time_ahead_of_the_receipt_is_recorded_as_the_receipt(self) -> None:
        """A forged future x-failed-at counts as failing when the drain recorded the letter: it
        leaves "the last hour" an hour later and `--older-than` reaches it; its header still says
        what it said."""
        records = self.records()
        received = datetime.now(UTC) - timedelta(hours=2)
        forged = "2999-01-01T00:00:00.000+00:00"
        letter = new_letter(failed_at=datetime.fromisoformat(forged))
        records.insert([letter], at=received)
        [summary] = records.page().letters
        assert summary.failed_at == summary.received_at == received
        everything = frozenset(STATUSES)
        assert (
            records.count(LetterFilter(statuses=everything, since=datetime.now(UTC) - timedelta(hours=1)))
            == 0
        )
        assert records.count(LetterFilter(until=datetime.now(UTC) - timedelta(hours=1))) == 1
        stored = records.get(summary.id)
        assert stored is not None and stored.headers["x-failed-at"] == forged

    def test_filters_combine_and_pages_are_keyset_pages(self) -> None:
        """Reason, type, id, time and text filters; pages follow one another without overlap."""
        records = self.records()
        records.insert(spread(30))
        assert records.count() == 30
        assert records.count(LetterFilter(reasons=frozenset({"no_recipient"}))) == 10
        assert records.count(LetterFilter(types=frozenset({"OwnerChanged"}))) == 10
        assert records.count(LetterFilter(event_ids=frozenset({"evt-000004", "evt-000005"}))) == 2
        since = LetterFilter(since=T0 + timedelta(seconds=10), until=T0 + timedelta(seconds=20))
        assert records.count(since) == 10
        assert records.count(LetterFilter(text="KEYERROR")) == 10
        assert records.count(LetterFilter(text="c-17'")) == 1
        assert records.count(LetterFilter(text="%")) == 0  # a LIKE wildcard is just a character
        assert records.count(LetterFilter(limit=7)) == 7
        seen: list[int] = []
        after = None
        while True:
            page = records.page(after=after, limit=7)
            seen += [letter.id for letter in page.letters]
            if page.next_after is None:
                break
            after = page.next_after
        assert seen == sorted(seen) and len(set(seen)) == 30
        newest = records.page(limit=5, newest_first=True)
        assert [letter.id for letter in newest.letters] == sorted(seen, reverse=True)[:5]

    def test_groups_share_a_fingerprint_of_reason_type_and_pattern(self) -> None:
        """Letters failing at one place for different records make one group, with its
        count, first and last seen and a per-hour trend."""
        records = self.records()
        records.insert(spread(9, every=timedelta(minutes=30)))
        groups = records.groups(now=T0 + timedelta(hours=4), hours=6)
        assert [group.count for group in groups] == [3, 3, 3]
        by_reason = {group.reason: group for group in groups}
        nobody = by_reason["no_recipient"]
        assert nobody.pattern == "owner is '…', no decision maker for client '…'"
        assert nobody.fingerprint == fingerprint("no_recipient", "RenewalApproaching", nobody.pattern)
        assert nobody.first_seen == T0 and nobody.last_seen == T0 + timedelta(hours=3)
        assert sum(nobody.trend) == 3 and len(nobody.trend) == 6
        only = LetterFilter(groups=frozenset({nobody.fingerprint}))
        assert records.count(only) == 3

    def test_the_detail_is_normalised_without_its_values(self) -> None:
        """Numbers, ids and quoted values go; the words stay."""
        assert (
            normalised_detail("KeyError: 'c-17' at rules.py:42, id 3f2a9c1e-aa11")
            == "KeyError: '…' at rules.py:…, id …"
        )
        assert fingerprint("r", "T", "x 'a'") == fingerprint("r", "T", "x 'b'")
        assert fingerprint("r", "T", "x") != fingerprint("r", "U", "x")

    def test_notes_and_actions_make_the_history_and_the_audit(self) -> None:
        """A note, then an archive: both in the letter's history, each in the audit."""
        records = self.records()
        records.insert([new_letter(event_id="evt-a")])
        [letter] = records.page().letters
        records.add_note(letter.id, "waiting for billing to fix c-17", actor="ana")
        with pytest.raises(KeyError):
            records.add_note(letter.id + 100, "nobody", actor="ana")
        assert records.archive(LetterFilter(letter_ids=frozenset({letter.id})), actor="ana") == 1
        stored = records.get(letter.id)
        assert stored is not None and stored.summary.status == "archived"
        assert [entry.kind for entry in stored.history] == ["note", "archived"]
        assert stored.notes[0].text == "waiting for billing to fix c-17" and stored.notes[0].actor == "ana"
        assert [entry.action for entry in records.audit_log()] == ["archive", "note"]
        assert records.audit_log()[0].counts == {"archived": 1}

    def test_archive_by_age_leaves_the_newer_and_the_resolved(self) -> None:
        """`until` a time archives the older unresolved letters only."""
        records = self.records()
        records.insert(spread(10, every=timedelta(days=1)))
        assert records.archive(LetterFilter(until=T0 + timedelta(days=4)), actor="ana") == 4
        assert records.archive(LetterFilter(until=T0 + timedelta(days=4)), actor="ana") == 0
        assert records.count() == 6
        assert records.count(LetterFilter(statuses=frozenset({"archived"}))) == 4

    def test_purge_resolves_and_retention_prunes_only_the_resolved(self) -> None:
        """Purged and archived letters are pruned once resolved long enough; new ones never."""
        records = self.records()
        records.insert(spread(6))
        assert records.purge(LetterFilter(reasons=frozenset({"no_recipient"})), actor="ana") == 2
        assert records.count(LetterFilter(statuses=frozenset(STATUSES))) == 6
        future = datetime.now(UTC) + timedelta(days=1)
        assert records.prune_resolved(resolved_before=future, limit=1) == 1
        assert records.prune_resolved(resolved_before=future, limit=10) == 1
        assert records.prune_resolved(resolved_before=future, limit=10) == 0
        assert records.count(LetterFilter(statuses=frozenset(STATUSES))) == 4
        assert records.prune_resolved(resolved_before=datetime.now(UTC) - timedelta(days=1), limit=10) == 0

    def test_a_purge_of_the_shown_takes_those_alone_in_chunks_under_one_audit_row(self) -> None:
        """1,201 shown letters are purged in chunks in one transaction with one audit row;
        a letter that arrived after the preview, and one already purged, are left alone."""
        records = self.records()
        records.insert(spread(1_202))
        everything = LetterFilter(limit=None)
        shown = [letter.summary.id for letter in records.letters(everything)][:1_201]
        records.purge(LetterFilter(letter_ids=frozenset(shown[:1])), actor="bo")
        purged = records.purge_shown(
            shown, statuses=frozenset({"new"}), actor="ana", operation_id="op-1", described="--all"
        )
        assert purged == 1_200 and records.count() == 1
        [entry, _] = records.audit_log(limit=2)
        assert (entry.action, entry.operation_id, entry.selection, entry.counts) == (
            "purge",
            "op-1",
            "--all",
            {"purged": 1_200},
        )

    def test_a_note_on_several_letters_is_one_audit_row_or_none_at_all(self) -> None:
        """A note on two letters is in both histories and once in the audit; a note naming a
        letter that does not exist notes none."""
        records = self.records()
        records.insert([new_letter(event_id="evt-a"), new_letter(event_id="evt-b")])
        ids = [letter.id for letter in records.page().letters]
        records.add_note(ids, "one look", actor="ana", operation_id="op-2")
        with pytest.raises(KeyError):
            records.add_note([ids[0], ids[1] + 100], "half", actor="ana")
        assert [[entry.text for entry in records.history(i)] for i in ids] == [["one look"], ["one look"]]
        [entry] = records.audit_log()
        assert (entry.operation_id, entry.counts) == ("op-2", {"noted": 2})

    def test_a_replay_operation_claims_settles_and_resumes(self) -> None:
        """Claims come in arrival order; what was settled is not taken again; a resumed
        operation takes up exactly what is left; letters arriving later are not in it."""
        records = self.records()
        records.insert(spread(5))
        operation = records.start_replay(LetterFilter(), actor="ana", rate=10.0)
        assert operation.total == 5 and operation.status == "running"
        records.insert(spread(2))  # after the start: not in this operation
        first = records.claim(operation.id, limit=2)
        assert [held.letter.summary.event_id for held in first] == ["evt-000000", "evt-000001"]
        records.settle(first[0], outcome=HistoryEntry(at=T0, kind="replayed", actor="ana", to=("x", "y")))
        records.settle(
            first[1], outcome=HistoryEntry(at=T0, kind="replay_failed", actor="ana", outcome="nope")
        )
        second = records.claim(operation.id, limit=1)
        records.release(second)
        records.finish(operation.id, actor="ana", cancelled=True)
        other = records.start_replay(LetterFilter(), actor="bo", rate=None, operation_id="x1")
        with pytest.raises(OperationBusy, match="running in another process"):
            records.resume(other.id, actor="bo")
        resumed = records.resume(operation.id, actor="ana")
        assert resumed.status == "running" and not resumed.cancel_requested
        rest = records.claim(operation.id, limit=10)
        assert [held.letter.summary.event_id for held in rest] == ["evt-000002", "evt-000003", "evt-000004"]
        done = records.finish(operation.id, actor="ana")
        assert (done.status, done.replayed, done.failed) == ("finished", 1, 1)
        replayed = records.get(first[0].letter.summary.id)
        assert replayed is not None and replayed.summary.status == "replayed"
        assert replayed.history[-1].to == ("x", "y") and replayed.history[-1].operation_id == operation.id
        failed = records.get(first[1].letter.summary.id)
        assert failed is not None and failed.summary.status == "new"
        assert records.audit_log(operation_id=operation.id)[0].result == "finished with failures"
        with pytest.raises(UnknownOperation):
            records.operation("nope")

    def test_a_cancel_from_another_process_is_seen_by_the_running_replay(self) -> None:
        """The flag set through one connection is read through another; an operation nobody
        runs is cancelled at once."""
        records = self.records()
        records.insert(spread(3))
        operation = records.start_replay(LetterFilter(), actor="ana", rate=None)
        self.records().request_cancel(operation.id, actor="bo")
        seen = records.operation(operation.id)
        assert seen.cancel_requested and seen.status == "running"
        stale = self.records().request_cancel(operation.id, actor="bo", stale_after=0)
        assert stale.status == "cancelled"

    def test_two_replays_at_once_never_hold_the_same_letter(self) -> None:
        """Two operations over the same selection, claiming concurrently through their own
        connections, share the letters out: each letter is claimed once."""
        self.records().insert(spread(300))
        operations = [self.records().start_replay(LetterFilter(), actor=name, rate=None) for name in "ab"]
        claimed: dict[str, list[int]] = {"a": [], "b": []}

        def replay(name: str, operation_id: str) -> None:
            records = self.records()
            while batch := records.claim(operation_id, limit=7):
                for held in batch:
                    claimed[name].append(held.letter.summary.id)
                    records.settle(held, outcome=HistoryEntry(at=T0, kind="replayed", actor=name))

        threads = [
            threading.Thread(target=replay, args=(name, op.id))
            for name, op in zip("ab", operations, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        everything = claimed["a"] + claimed["b"]
        assert sorted(everything) == sorted(set(everything)) and len(everything) == 300


class TestSqliteRecords(RecordsContract):
    @pytest.fixture(autouse=True)
    def _url(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'renewals.db'}"


class TestPostgresRecords(RecordsContract):
    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url
