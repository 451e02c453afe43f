"""Replays that close the loop, through the real worker and broker, on SQLite and PostgreSQL:
`renewals dlq replay` publishes the copies, the worker handles them (or dead-letters them again,
and its drain records the new letters), and every letter's fate is linked both ways; a canary
stops on letters still failing and goes on when they resolve; a worker started after the replay
records the outcome."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.console import OPERATOR, basic, in_process, sign_in
from support.letters import new_letter
from support.messages import contact, renewal
from support.polling import wait_until
from support.worker_process import WorkerProcess
from tests.e2e.commands import failed, ok, renewals
from tests.e2e.conftest import FAST_RETRIES
from worker.dead_letters.model import LetterFilter, StoredLetter
from worker.dead_letters.records import DeadLetterRecords
from worker.store import open_store

pytestmark = pytest.mark.any_broker  # fates live in the store: the broker's version plays no part

DORA = contact("dora", "client.example")
EVERY = LetterFilter(statuses=frozenset({"new", "replayed", "purged", "archived"}))


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'renewals.db'}"
    found: str = request.getfixturevalue("postgres_url")
    return found


@pytest.fixture
def records(url: str) -> Iterator[DeadLetterRecords]:
    store = open_store(url)
    store.migrate()
    yield DeadLetterRecords(store)
    store.close()


def worker_on(amqp_url: str, url: str, tmp_path: Path) -> WorkerProcess:
    return WorkerProcess(amqp_url, tmp_path, store_url=url, env=FAST_RETRIES)


def letters(records: DeadLetterRecords, *, good: int = 0, lonely: int = 0) -> list[int]:
    """Put dead letters in the store: `good` ones whose replay resolves (a decision maker is named),
    `lonely` ones whose replay fails again (nobody to tell); their ids."""
    made = [renewal(f"good-{n}", None, decision_maker=DORA, id=f"evt-good-{n}") for n in range(good)] + [
        renewal(f"lonely-{n}", "p-none", id=f"evt-lonely-{n}") for n in range(lonely)
    ]
    before = {letter.id for letter in records.page(EVERY, limit=1000).letters}
    records.insert([new_letter(event_id=m["id"], body=json.dumps(m).encode()) for m in made])
    return sorted({letter.id for letter in records.page(EVERY, limit=1000).letters} - before)


def cli(amqp_url: str, url: str, *args: str) -> Any:
    return renewals(amqp_url, *args, RENEWALS_STORE_URL=url)


def fated(records: DeadLetterRecords, letter_ids: list[int]) -> list[StoredLetter]:
    """The letters, once every one has a fate."""

    def all_fated() -> list[StoredLetter] | None:
        found = [records.get(letter_id) for letter_id in letter_ids]
        return (
            [f for f in found if f is not None and f.fate is not None]
            if all(f is not None and f.fate is not None for f in found)
            else None
        )

    result: list[StoredLetter] = wait_until(all_fated, f"fates of {letter_ids}", timeout=30)
    return result


def test_a_replay_resolves_one_letter_and_another_fails_again_each_linked_both_ways(
    amqp_url: str, url: str, records: DeadLetterRecords, tmp_path: Path
) -> None:
    """One letter resolves (its history names the notification), one fails again (its history
    names the new letter, which names it back); `dlq replays` counts one of each, none pending,
    and `dlq show` says both."""
    ok(renewals(amqp_url, "topology", "--declare"))
    worker = worker_on(amqp_url, url, tmp_path).start()
    try:
        good, lonely = letters(records, good=1, lonely=1)
        ok(cli(amqp_url, url, "dlq", "replay", "--all"))
        resolved, again = fated(records, [good, lonely])
    finally:
        worker.stop()
    assert resolved.fate is not None and resolved.fate.kind == "resolved"
    [entry] = [e for e in resolved.history if e.kind == "resolved"]
    notification = entry.message_id
    assert notification and entry.outcome == f"notification {notification} requested"
    assert again.fate is not None and again.fate.kind == "failed_again"
    new_id = again.fate.next_letter
    assert new_id is not None
    [back] = [e for e in again.history if e.kind == "failed_again"]
    assert back.linked_letter == new_id and back.outcome.startswith(
        f"failed again as #{new_id}: no_recipient"
    )
    new = records.get(new_id)
    assert new is not None and new.previous_letter == lonely and new.summary.status == "new"
    [row] = json.loads(ok(cli(amqp_url, url, "dlq", "replays", "--json")).stdout)
    assert (row["replayed"], row["resolved"], row["failed_again"], row["pending"]) == (2, 1, 1, 0)
    shown = ok(cli(amqp_url, url, "dlq", "show", f"#{lonely}")).stdout
    assert f"failed again, came back as #{new_id} (no_recipient" in shown
    assert (
        f"a replay of #{lonely} that failed again"
        in ok(cli(amqp_url, url, "dlq", "show", f"#{new_id}")).stdout
    )


def test_a_worker_started_after_the_replay_records_its_outcome(
    amqp_url: str, url: str, records: DeadLetterRecords, tmp_path: Path
) -> None:
    """Replayed while no worker runs: the copy waits in the queue, pending; a worker started
    afterwards handles it and the letter resolves: it is all in the store and the queue."""
    ok(renewals(amqp_url, "topology", "--declare"))
    [good] = letters(records, good=1)
    ok(cli(amqp_url, url, "dlq", "replay", "--all"))
    [operation] = records.operations()
    assert (operation.replayed, operation.pending) == (1, 1)
    worker = worker_on(amqp_url, url, tmp_path).start()
    try:
        [resolved] = fated(records, [good])
    finally:
        worker.stop()
    assert resolved.fate is not None and resolved.fate.kind == "resolved"
    assert records.operation(operation.id).resolved == 1


def test_a_canary_stops_on_letters_still_failing_and_one_that_resolves_goes_on(
    amqp_url: str, url: str, records: DeadLetterRecords, tmp_path: Path
) -> None:
    """`--canary 1` over letters that still fail: exit 1, one line naming the letter, its new
    letter and why, the other letters untouched and new; over letters that resolve, the replay
    goes on and finishes with every one resolved."""
    ok(renewals(amqp_url, "topology", "--declare"))
    worker = worker_on(amqp_url, url, tmp_path).start()
    try:
        lonely = letters(records, lonely=3)
        line = failed(cli(amqp_url, url, "dlq", "replay", "--all", "--canary", "1", "--canary-timeout", "20"))
        [operation] = records.operations()
        [canary] = [records.get(lonely[0])]
        assert canary is not None and canary.fate is not None
        assert line.startswith(
            f"Error: replay {operation.id} paused after 1 of 3: canary: 1 of 1 failed again:"
        )
        assert f"#{lonely[0]} as #{canary.fate.next_letter} (no_recipient" in line
        assert f"`renewals dlq replay --resume {operation.id}`" in line
        rest = [records.get(letter_id) for letter_id in lonely[1:]]
        assert [(r.summary.status, r.history) for r in rest if r is not None] == [("new", [])] * 2
        assert (operation.status, operation.canary_result) == ("paused", "failed")
        records.purge(LetterFilter(), actor="test")

        good = letters(records, good=3)
        ok(cli(amqp_url, url, "dlq", "replay", "--all", "--canary", "1", "--canary-timeout", "20"))
        assert [letter.fate.kind for letter in fated(records, good) if letter.fate] == ["resolved"] * 3
    finally:
        worker.stop()
    going = records.operations()[0]
    assert (going.status, going.canary_result, going.resolved) == ("finished", "passed", 3)


def test_the_console_api_and_pages_show_a_canary_that_stops_and_one_that_goes_on(
    amqp_url: str, url: str, tmp_path: Path
) -> None:
    """Through the console's API: a canary over letters still failing pauses, and its page and
    API name each letter that failed again with a link to the new letter; resumed, it goes on.
    A canary over letters that resolve finishes; the replays page counts resolved, failed again
    and pending."""
    ok(renewals(amqp_url, "topology", "--declare"))
    client, records = in_process(tmp_path / "console", [], amqp_url=amqp_url, store_url=url)
    worker = worker_on(amqp_url, url, tmp_path).start()
    auth = basic(OPERATOR)

    def replayed(body: dict[str, Any], until: str) -> dict[str, Any]:
        started = client.post("/api/replays", json=body, headers=auth)
        assert started.status_code == 202, started.text
        path = f"/api/replays/{started.json()['id']}"
        found: dict[str, Any] = wait_until(
            lambda: (got := client.get(path, headers=auth).json())["status"] == until and got,
            until,
            timeout=30,
        )
        return found

    try:
        lonely = letters(records, lonely=3)
        stopped = replayed({"selection": {"all": True}, "canary": 1, "canary_timeout": 20}, "paused")
        [back] = stopped["failed_again_letters"]
        assert (back["letter"], stopped["canary_result"], stopped["replayed"]) == (lonely[0], "failed", 1)
        assert stopped["pause_reason"].startswith("canary: 1 of 1 failed again: ")
        sign_in(client, OPERATOR)
        page = client.get(f"/replays/{stopped['id']}").text
        assert (
            f'href="/letters/{back["new_letter"]}"' in page and "Paused: canary: 1 of 1 failed again" in page
        )
        letter_page = client.get(f"/letters/{lonely[0]}").text
        assert f'<a class="linked-letter" href="/letters/{back["new_letter"]}">' in letter_page
        resumed = client.post(f"/api/replays/{stopped['id']}/resume", headers=auth).json()
        assert resumed["canary_result"] == "waived"
        wait_until(
            lambda: records.operation(stopped["id"]).failed_again == 3, "the rest failing again", timeout=30
        )
        records.purge(LetterFilter(), actor="test")

        good = letters(records, good=2)
        going = replayed({"selection": {"all": True}, "canary": 1}, "finished")
        assert going["canary_result"] == "passed"
        fated(records, good)
    finally:
        worker.stop()
    rows = client.get("/replays").text
    assert (
        '<td class="num">2</td><td class="num">0</td><td class="num">0</td></tr>' in rows
    )  # resolved, failed again, pending


def test_two_workers_handling_a_replays_copies_resolve_each_letter_once(
    amqp_url: str, url: str, records: DeadLetterRecords, tmp_path: Path
) -> None:
    """Two workers share the queue and the store: 30 replayed letters, 20 resolving and 10
    failing again, each get exactly one fate and one history entry of it, and the counts add up."""
    ok(renewals(amqp_url, "topology", "--declare"))
    workers = [
        WorkerProcess(amqp_url, tmp_path, store_url=url, name=f"worker-{n}", env=FAST_RETRIES).start()
        for n in range(2)
    ]
    try:
        made = letters(records, good=20, lonely=10)
        ok(cli(amqp_url, url, "dlq", "replay", "--all", "--rate", "200"))
        done = fated(records, made)
    finally:
        for worker in workers:
            worker.stop()
    kinds = [letter.fate.kind for letter in done if letter.fate]
    assert (kinds.count("resolved"), kinds.count("failed_again")) == (20, 10)
    for letter in done:
        fates = [e for e in letter.history if e.kind in ("resolved", "failed_again")]
        assert len(fates) == 1, letter.history
    [operation] = records.operations()
    assert (operation.replayed, operation.resolved, operation.failed_again, operation.pending) == (
        30,
        20,
        10,
        0,
    )
