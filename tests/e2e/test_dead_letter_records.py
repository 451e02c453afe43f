"""Dead letters become records, through the real worker: every letter that reaches the
dead-letter queue (the worker's, the broker's delivery limit, a previous release's left in the
queue) is one row, whatever happens between its insert and its ack, and waits in the queue
while the store is away."""

import json
import sqlite3
import time
from pathlib import Path

import pika
import pytest

from support.client import NAMES, Client
from support.faults import KILLED_AFTER_RECORDING
from support.letters import new_letter
from support.messages import contact, encode, envelope, renewal
from support.polling import wait_until
from support.records import stored_letters
from support.spare_postgres import spare_postgres
from support.worker_process import WorkerProcess
from tests.e2e.commands import ok, renewals
from worker.dead_letters.records import DeadLetterRecords
from worker.store import open_store

DLQ = NAMES.dead_letter_queue
DORA = contact("dora", "client.example")
AS_JSON = pika.BasicProperties(content_type="application/json", delivery_mode=2)


def reasons(store_url: str) -> list[str]:
    return [letter.summary.reason for letter in stored_letters(store_url)]


def previous_release_letter(client: Client) -> bytes:
    """A dead letter as the previous release wrote it, left in the queue when it was stopped."""
    body = encode(envelope("InvoicePaid", {"invoice": 7}, id="old-1"))
    headers = {
        "x-error-reason": "unknown_event_type",
        "x-error-detail": "event type 'InvoicePaid' is not one the worker consumes",
        "x-original-exchange": NAMES.events_exchange,
        "x-original-routing-key": "invoice.paid",
        "x-failed-at": "2026-11-01T08:00:00.000+00:00",
        "x-attempts": 1,
        "x-worker-version": "0.9.0",
        "x-worker-host": "old-host",
    }
    properties = pika.BasicProperties(content_type="application/json", delivery_mode=2, headers=headers)
    client.channel.basic_publish("", DLQ, body, properties, mandatory=True)
    return body


def test_letters_of_every_reason_become_one_row_each(
    client: Client, start_worker, amqp_url: str, store_url: str
) -> None:
    """A previous release's letter and a broker's delivery-limit letter waiting in the queue,
    then the worker's own: each becomes one row; the queue ends empty, and 30 lists keep them all."""
    limit = {"RENEWALS_DELIVERY_LIMIT": "1"}
    ok(renewals(amqp_url, "topology", "--declare", **limit))
    old_body = previous_release_letter(client)
    client.publish([renewal("c1", None, decision_maker=DORA, id="dl-1")])
    for _ in range(2):  # delivered, given back, delivered, given back: over the limit of 1
        method = wait_until(lambda: client.channel.basic_get(NAMES.queue)[0], "a delivery", 5)
        client.channel.basic_reject(method.delivery_tag, requeue=True)  # 4.3 counts no nack
    wait_until(lambda: client.count(DLQ) == 2, "two letters waiting for a worker")
    start_worker(**limit)
    client.publish([b"{not json"], content_type="application/json")
    client.publish([renewal("c9", "p-none", id="nr-1")])
    wait_until(lambda: len(stored_letters(store_url)) == 4 and client.count(DLQ) == 0, "four rows")
    assert sorted(reasons(store_url)) == [
        "delivery_limit",
        "invalid_json",
        "no_recipient",
        "unknown_event_type",
    ]
    [old] = [letter for letter in stored_letters(store_url) if letter.summary.reason == "unknown_event_type"]
    assert old.body == old_body and old.headers["x-worker-version"] == "0.9.0"
    assert (
        old.summary.failed_at is not None and old.summary.failed_at.isoformat() == "2026-11-01T08:00:00+00:00"
    )
    env = {"RENEWALS_STORE_URL": store_url}
    listed = ok(renewals(amqp_url, "dlq", "list", "--json", **env)).stdout
    for _ in range(30):
        assert ok(renewals(amqp_url, "dlq", "list", "--json", **env)).stdout == listed
    assert len(json.loads(listed)) == 4 and client.count(DLQ) == 0
    time.sleep(1.5)  # a few more drain rounds: nothing comes back
    assert len(stored_letters(store_url)) == 4


def test_a_worker_killed_between_insert_and_ack_leaves_one_row(
    client: Client, start_worker, store_url: str
) -> None:
    """The worker dies right after committing a letter and before acknowledging it: the letter
    goes back to the queue; the next worker takes it again and records nothing new."""
    dying = start_worker(faults={"records": "dies_after_recording"})
    client.publish([b'{"die-after-recording": '], content_type="application/json")
    wait_until(lambda: not dying.running(), "the worker to die after its commit", 20)
    assert dying.process is not None and dying.process.returncode == KILLED_AFTER_RECORDING
    assert reasons(store_url) == ["invalid_json"]
    wait_until(lambda: client.count(DLQ) == 1, "the unacknowledged letter back in the queue")
    survivor = start_worker()
    [recorded] = survivor.wait_for("dead_letter.recorded")
    assert (recorded["count"], recorded["new"]) == (1, 0)
    wait_until(lambda: client.count(DLQ) == 0, "the queue empty again")
    assert reasons(store_url) == ["invalid_json"]


def test_letters_wait_in_the_queue_while_the_sqlite_store_is_locked(
    client: Client, start_worker, store_url: str
) -> None:
    """Another process holds the SQLite file's write lock: the worker records nothing, rejects
    nothing and stays up; once the lock is gone every letter is recorded once."""
    worker = start_worker(RENEWALS_STORE_LOCK_TIMEOUT="0.2")
    path = store_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for number in range(5):
            client.channel.basic_publish(
                "", DLQ, encode(renewal(f"c{number}", id=f"waiting-{number}")), AS_JSON
            )
        worker.wait_for("store.lost", timeout=20)
        time.sleep(1.0)
        assert worker.running()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    worker.wait_for("store.recovered", timeout=30)
    wait_until(lambda: len(stored_letters(store_url)) == 5 and client.count(DLQ) == 0, "five rows")
    assert sorted(letter.summary.event_id or "" for letter in stored_letters(store_url)) == [
        f"waiting-{number}" for number in range(5)
    ]
    assert not [line for line in worker.lines() if line.get("event") == "broker.connection_lost"]


@pytest.mark.other_brokers_slow
def test_letters_wait_in_the_queue_while_postgresql_is_down(
    client: Client, amqp_url: str, tmp_path: Path
) -> None:
    """PostgreSQL stops for a while: letters published meanwhile wait in the queue, and are all
    recorded once, by a worker that never exited, when it is back."""
    with spare_postgres() as server:
        worker = WorkerProcess(
            amqp_url, tmp_path, store_url=server.url, env={"RENEWALS_STORE_LOCK_TIMEOUT": "1"}
        )
        worker.start()
        try:
            client.channel.basic_publish("", DLQ, encode(renewal("c0", id="before-0")), AS_JSON)
            wait_until(lambda: len(stored_letters(server.url)) == 1, "the first row")
            server.stop()
            for number in range(4):
                client.channel.basic_publish(
                    "", DLQ, encode(renewal(f"c{number}", id=f"during-{number}")), AS_JSON
                )
            worker.wait_for("store.lost", timeout=30)
            time.sleep(1.0)
            assert worker.running()
            server.start()
            worker.wait_for("store.recovered", timeout=60)
            wait_until(
                lambda: len(stored_letters(server.url)) == 5 and client.count(DLQ) == 0, "five rows", 30
            )
            ids = sorted(letter.summary.event_id or "" for letter in stored_letters(server.url))
            assert ids == ["before-0", *(f"during-{number}" for number in range(4))]
        finally:
            worker.kill()


def test_a_forged_routing_key_too_long_for_amqp_fails_that_letter_only(
    client: Client, amqp_url: str, store_url: str
) -> None:
    """Issue 18: with --to-original, a letter whose x-original-routing-key is 300 bytes fails
    alone, with the reason; the honest letter beside it is replayed, and the command exits 1."""
    ok(renewals(amqp_url, "topology", "--declare"))
    store = open_store(store_url)
    store.migrate()
    forged = new_letter(event_id="forged-1", headers={"x-original-exchange": NAMES.events_exchange,
                                                      "x-original-routing-key": "k" * 300})  # fmt: skip
    honest = new_letter(event_id="honest-1", headers={"x-original-exchange": NAMES.events_exchange,
                                                      "x-original-routing-key": "renewal.approaching"})  # fmt: skip
    DeadLetterRecords(store).insert([forged, honest])
    result = renewals(amqp_url, "dlq", "replay", "--all", "--to-original", RENEWALS_STORE_URL=store_url)
    assert result.exit_code == 1, result.output
    assert "routing key is 300 bytes, over AMQP's 255" in result.stdout
    assert "replayed 1, skipped 0, failed 1" in result.stdout
    assert (
        result.stderr.strip().splitlines()[-1] == "Error: 1 dead letters could not be replayed; they stay new"
    )
    wait_until(lambda: client.count(NAMES.queue) == 1, "the honest letter in the worker's queue")
    left = [letter.summary.event_id for letter in stored_letters(store_url) if letter.summary.status == "new"]
    assert left == ["forged-1"]
