"""Replays that close the loop, on SQLite and PostgreSQL, without a broker: each copy goes
through the worker's real batch (BatchProcessor) and, when it fails, through the drain's real
reading of a dead letter; the fates, links, counts, canary and brake are read from the store."""

import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from support.letters import new_letter
from support.messages import contact, renewal
from worker.broker.publisher import encoded_size
from worker.dead_letters.brakes import Brakes
from worker.dead_letters.drain import new_letter as drained
from worker.dead_letters.model import LetterFilter, NewLetter
from worker.dead_letters.records import DeadLetterRecords
from worker.dead_letters.replays import run
from worker.dead_letters.routing import Routes
from worker.messaging import REPLAY_OF_LETTER, REPLAY_OPERATION, Delivery
from worker.service.outbox import Outbox
from worker.service.processing import BatchProcessor
from worker.settings import Settings
from worker.store import SqlStore, open_store

DORA = contact("dora", "client.example")
QUICK = Brakes(canary_timeout=5.0, look_every=0.05)


def letter_of(client_id: str, *, resolves: bool) -> NewLetter:
    """A dead letter whose replay resolves (a decision maker is named) or fails again (nobody to tell)."""
    event_id = f"evt-{client_id}-{time.monotonic_ns()}"
    message = (
        renewal(client_id, None, decision_maker=DORA, id=event_id)
        if resolves
        else renewal(client_id, "p-none", id=event_id)
    )
    return new_letter(event_id=event_id, body=json.dumps(message).encode())


class Worker:
    """What the worker does with a replay's copy, through its real parts: the batch on its own
    connection, and for a copy it dead-letters, the drain's reading and recording of it."""

    def __init__(self, url: str) -> None:
        self.store = opened(url)
        outbox = Outbox(self.store, grace_s=30, sweep_every_s=10)
        self.processor = BatchProcessor(Settings(), self.store, outbox=outbox, encoded_size=encoded_size)
        self.records = DeadLetterRecords(self.store)
        self.handling = True
        self.published: list[dict[str, Any]] = []

    def republish(self, exchange: str, routing_key: str, body: bytes, properties: dict[str, Any]) -> None:
        self.published.append(properties["headers"])
        if not self.handling:
            return
        amqp = {k: v for k, v in properties.items() if k != "headers"} | {
            "application_headers": properties["headers"]
        }
        [result] = self.processor.process([Delivery(body, amqp, exchange, routing_key, 1)])
        if result.failure is not None and result.failure.outgoing is not None:
            out = result.failure.outgoing
            letter = drained(Delivery(out.body, out.properties, out.exchange, out.routing_key, 1))
            self.records.insert([letter])
            self.records.came_back([letter])


def opened(url: str) -> SqlStore:
    store = open_store(url)
    store.migrate()
    return store


class FatesContract:
    url: str

    def records(self) -> DeadLetterRecords:
        return DeadLetterRecords(opened(self.url))

    def replay(
        self, records: DeadLetterRecords, worker: Worker, *, canary: int = 0, brakes: Brakes = QUICK
    ) -> Any:
        operation = records.start_replay(LetterFilter(), actor="ana", rate=None, canary=canary)
        ended, _ = run(records, operation.id, worker, Routes.of(Settings()), actor="ana", brakes=brakes)
        return ended

    def test_a_resolved_replay_names_its_notification_and_the_operation_counts_it(self) -> None:
        """The copy carries the letter's id and the operation's; the worker's batch resolves the
        letter in its own transaction, with the notification it caused, and the operation
        counts one resolved, none failed again or pending."""
        records, worker = self.records(), Worker(self.url)
        records.insert([letter_of("good", resolves=True)])
        ended = self.replay(records, worker)
        [headers] = worker.published
        [summary] = records.page(LetterFilter(statuses=frozenset({"replayed"}))).letters
        assert headers[REPLAY_OF_LETTER] == summary.id and headers[REPLAY_OPERATION] == ended.id
        letter = records.get(summary.id)
        assert letter is not None and letter.fate is not None
        assert letter.fate.kind == "resolved" and letter.fate.operation_id == ended.id
        [resolved] = [entry for entry in letter.history if entry.kind == "resolved"]
        assert resolved.kind == "resolved" and resolved.message_id is not None
        assert resolved.outcome == f"notification {resolved.message_id} requested"
        assert (ended.resolved, ended.failed_again, ended.pending) == (1, 0, 0)

    def test_a_replay_that_fails_again_links_the_new_letter_both_ways(self) -> None:
        """The copy dead-lettered again becomes a new letter that names the old one, and the old
        letter's history names the new one with its reason; draining it twice links once."""
        records, worker = self.records(), Worker(self.url)
        records.insert([letter_of("lonely", resolves=False)])
        ended = self.replay(records, worker)
        old_summary, new_summary = records.page(LetterFilter(statuses=frozenset({"new", "replayed"}))).letters
        old, new = records.get(old_summary.id), records.get(new_summary.id)
        assert old is not None and new is not None and old.fate is not None
        assert (old.fate.kind, old.fate.next_letter, new.previous_letter) == (
            "failed_again",
            new.summary.id,
            old.summary.id,
        )
        [failed] = [entry for entry in old.history if entry.kind == "failed_again"]
        assert failed.linked_letter == new.summary.id and "no_recipient" in (failed.outcome or "")
        assert [(e.kind, e.linked_letter) for e in new.history] == [("replay_of", old.summary.id)]
        again = drained_again(new)
        assert records.came_back([again]) == 0 and len(records.history(old.summary.id)) == len(old.history)
        again_op = records.operation(ended.id)
        assert (again_op.resolved, again_op.failed_again, again_op.pending) == (0, 1, 0)

    def test_a_copy_only_retried_has_no_fate_and_counts_as_pending(self) -> None:
        """A copy nobody has handled yet leaves the letter without a fate: pending."""
        records, worker = self.records(), Worker(self.url)
        worker.handling = False
        records.insert([letter_of("later", resolves=True)])
        ended = self.replay(records, worker)
        assert (ended.replayed, ended.resolved, ended.failed_again, ended.pending) == (1, 0, 0, 1)

    def test_a_forged_header_naming_a_letter_no_replay_holds_changes_nothing(self) -> None:
        """A message whose headers name a letter its operation never held writes no fate."""
        records, worker = self.records(), Worker(self.url)
        records.insert([letter_of("victim", resolves=True)])
        [victim] = records.page().letters
        message = renewal("forged", None, decision_maker=DORA, id="evt-forged")
        headers = {REPLAY_OF_LETTER: victim.id, REPLAY_OPERATION: "made-up"}
        worker.processor.process(
            [
                Delivery(
                    json.dumps(message).encode(),
                    {"content_type": "application/json", "application_headers": headers},
                    "renewals.events",
                    "renewal.approaching",
                    1,
                )
            ]
        )
        stored = records.get(victim.id)
        assert stored is not None and stored.fate is None and stored.history == []

    def test_a_canary_whose_letters_fail_again_pauses_and_leaves_the_rest_untouched(self) -> None:
        """Two canaries fail again: the replay pauses saying which and why, the other letters
        stay new and unclaimed; resuming waives the canary and replays them."""
        records, worker = self.records(), Worker(self.url)
        records.insert([letter_of(f"lonely-{n}", resolves=False) for n in range(5)])
        ended = self.replay(records, worker, canary=2)
        assert (ended.status, ended.canary_result, ended.replayed, ended.failed_again) == (
            "paused",
            "failed",
            2,
            2,
        )
        assert ended.pause_reason.startswith("canary: 2 of 2 failed again: #1 as #6 (no_recipient")
        untouched = records.page(LetterFilter(letter_ids=frozenset({3, 4, 5}))).letters
        assert [letter.status for letter in untouched] == ["new"] * 3
        resumed = records.resume(ended.id, actor="ana")
        assert (resumed.status, resumed.canary_result) == ("running", "waived")
        done, _ = run(records, ended.id, worker, Routes.of(Settings()), actor="ana", brakes=QUICK)
        assert (done.status, done.replayed, done.failed_again) == ("finished", 5, 5)

    def test_a_canary_whose_letters_resolve_lets_the_rest_go(self) -> None:
        """Canaries that resolve: the replay goes on and finishes, its canary passed."""
        records, worker = self.records(), Worker(self.url)
        records.insert([letter_of(f"good-{n}", resolves=True) for n in range(4)])
        ended = self.replay(records, worker, canary=2)
        assert (ended.status, ended.canary_result, ended.replayed, ended.resolved) == (
            "finished",
            "passed",
            4,
            4,
        )

    def test_a_canary_without_outcomes_in_time_pauses(self) -> None:
        """Canaries nobody handles within the timeout: paused, saying which have no outcome."""
        records, worker = self.records(), Worker(self.url)
        worker.handling = False
        records.insert([letter_of(f"slow-{n}", resolves=True) for n in range(3)])
        ended = self.replay(records, worker, canary=1, brakes=replace(QUICK, canary_timeout=0.3))
        assert (ended.status, ended.canary_result, ended.replayed) == ("paused", "timed out", 1)
        assert ended.pause_reason == "canary: 1 of 1 without an outcome after 0.3 s: #1"

    def test_the_brake_pauses_a_replay_whose_letters_keep_failing_again(self) -> None:
        """More than half of the latest four outcomes failed again: the replay pauses itself
        before the end, says so, and a resume counts outcomes afresh."""
        records, worker = self.records(), Worker(self.url)
        records.insert([letter_of(f"lonely-{n}", resolves=False) for n in range(40)])
        brakes = replace(QUICK, window=4, share=0.5)
        operation = records.start_replay(LetterFilter(), actor="ana", rate=20.0)
        ended, _ = run(records, operation.id, worker, Routes.of(Settings()), actor="ana", brakes=brakes)
        assert ended.status == "paused" and 3 <= ended.replayed < 40
        assert ended.pause_reason == "brake: 4 of the latest 4 outcomes failed again (more than 50% of 4)"
        assert records.audit_log(limit=1)[0].result == f"paused: {ended.pause_reason}"
        records.resume(ended.id, actor="ana")
        again, _ = run(records, ended.id, worker, Routes.of(Settings()), actor="ana", brakes=brakes)
        assert again.status == "paused" and again.replayed > ended.replayed

    def test_a_paused_replay_can_be_cancelled(self) -> None:
        """Nothing runs a paused replay: a cancel ends it at once."""
        records, worker = self.records(), Worker(self.url)
        records.insert([letter_of(f"lonely-{n}", resolves=False) for n in range(2)])
        ended = self.replay(records, worker, canary=1)
        assert records.request_cancel(ended.id, actor="bo").status == "cancelled"


def drained_again(letter: Any) -> NewLetter:
    """The stored letter as the drain would read it once more (a redelivery before its ack)."""
    properties = {**letter.properties, "application_headers": letter.headers}
    return drained(Delivery(letter.body, properties, "", "renewals.worker.dlq", 1))


class TestSqliteFates(FatesContract):
    @pytest.fixture(autouse=True)
    def _url(self, tmp_path: Path) -> None:
        self.url = f"sqlite:///{tmp_path / 'renewals.db'}"


class TestPostgresFates(FatesContract):
    @pytest.fixture(autouse=True)
    def _url(self, postgres_url: str) -> None:
        self.url = postgres_url
