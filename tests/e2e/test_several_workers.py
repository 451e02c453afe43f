"""Several workers on one PostgreSQL (issue 8), each test on a throw-away server of its own
(`spare_postgres`, shared by this module, a fresh database per test) and a fresh vhost: they
start together, wait out a database restart and cut connections, agree on the newest owner
setting, never give a reminder two ids, and pick up each other's orphaned outbox rows."""

import json
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import amqp
import psycopg
import pytest

from support.amqp import Confirms, connect
from support.client import NAMES, Client, PacedPublisher, audit
from support.messages import contact, owner_changed, renewal
from support.polling import wait_until
from support.records import stored_letters
from support.spare_postgres import SparePostgres, spare_postgres
from support.worker_process import WorkerProcess
from tests.e2e.conftest import FAST_RETRIES
from tests.integration.test_processing import processor_over
from worker.messaging import Delivery
from worker.service.outcomes import OUTCOMES
from worker.store import SCHEMA_VERSION, open_store

pytestmark = (
    pytest.mark.any_broker
)  # what several workers share is the database: the broker's version plays no part

DLQ = NAMES.dead_letter_queue
DORA = contact("dora", "client.example")


@dataclass(frozen=True)
class Database:
    name: str
    url: str


@pytest.fixture(scope="module")
def server() -> Iterator[SparePostgres]:
    with spare_postgres() as spare:
        yield spare


@pytest.fixture
def database(server: SparePostgres) -> Database:
    """An empty database of this test's own on the spare server."""
    return new_database(server)


def new_database(server: SparePostgres) -> Database:
    name = f"renewals_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.url, autocommit=True) as connection:
        connection.execute(f"CREATE DATABASE {name}")
    return Database(name, server.url.rsplit("/", 1)[0] + "/" + name)


StartWorkers = Callable[..., list[WorkerProcess]]


@pytest.fixture
def start_workers(amqp_url: str, database: Database, tmp_path: Path) -> Iterator[StartWorkers]:
    """Spawn `count` workers at the same moment on this test's vhost and database, then wait
    until each consumes; every one is killed at the end."""
    started: list[WorkerProcess] = []

    def start(count: int, faults: dict[str, str] | None = None, **env: str) -> list[WorkerProcess]:
        batch = [
            WorkerProcess(
                amqp_url,
                tmp_path,
                store_url=database.url,
                name=f"worker-{n}",
                env={**FAST_RETRIES, **env},
                faults=faults,
            )
            for n in range(len(started), len(started) + count)
        ]
        for worker in batch:
            started.append(worker.start(wait=False))
        for worker in batch:
            worker.wait_for("worker.consuming", timeout=45)
        return batch

    yield start
    for worker in started:
        worker.kill()


def outcomes(workers: list[WorkerProcess]) -> list[dict[str, Any]]:
    """Every message's canonical log line, across the workers (written once it is acknowledged)."""
    return [line for worker in workers for line in worker.lines() if line.get("event") in OUTCOMES]


def logged(workers: list[WorkerProcess], event: str) -> list[dict[str, Any]]:
    return [line for worker in workers for line in worker.find(event)]


def test_workers_started_together_on_an_empty_database_all_run(
    start_workers: StartWorkers, client: Client
) -> None:
    """Four workers started at the same moment on an empty database migrate it once, under the lock, and all consume and stay up."""
    workers = start_workers(4)
    migrated = logged(workers, "store.migrated")
    assert [(line["from_version"], line["to_version"]) for line in migrated] == [(0, SCHEMA_VERSION)]
    assert [line["schema_version"] for line in logged(workers, "store.opened")] == [SCHEMA_VERSION] * 4
    assert client.channel.queue_declare(NAMES.queue, passive=True).method.consumer_count == 4
    out = client.observe()
    events = [renewal(f"start-{n}", None, decision_maker=DORA, id=f"start-evt-{n}") for n in range(40)]
    client.publish(events)
    result = audit(client.take(out, len(events)), {event["id"] for event in events})
    assert (result["lost"], result["unexpected"], result["events_with_two_ids"]) == (0, 0, 0), result
    assert all(worker.running() for worker in workers), [w.tail() for w in workers if not w.running()]


def test_a_database_restart_and_cut_connections_lose_nothing_across_three_workers(
    server: SparePostgres, database: Database, start_workers: StartWorkers, client: Client, amqp_url: str
) -> None:
    """3000 reminders flow through three workers while the database restarts once and every connection is cut once: none lost, none dead-lettered or retried, one id each."""
    workers = start_workers(3, RENEWALS_OUTBOX_GRACE="5")
    out = client.observe()
    events = [renewal(f"flow-{n}", None, decision_maker=DORA, id=f"flow-evt-{n}") for n in range(3000)]
    publisher = PacedPublisher(amqp_url, events, per_second=300)
    publisher.start()
    wait_until(lambda: client.count(out) >= 600, "600 notifications before the restart", 30)
    server.restart(down_for=1.0)
    wait_until(lambda: client.count(out) >= 1800, "1800 notifications before the cut", 45)
    assert publisher.is_alive(), "the stream should still be flowing when the connections are cut"
    cut = server.cut_connections(database.name)
    publisher.join(30)
    assert publisher.error is None and not publisher.is_alive()
    wait_until(lambda: client.count(out) >= len(events), f"{len(events)} notifications", 60)
    wait_until(lambda: len(outcomes(workers)) >= len(events), "every event's log line", 30)
    result = audit(client.drain(out), {event["id"] for event in events})
    lost, recovered = logged(workers, "store.lost"), logged(workers, "store.recovered")
    print(
        f"\nfault test: {len(events)} events, {len(workers)} workers, 1 restart, 1 cut ({cut} connections),"
        f" lost {result['lost']}, dead letters {client.count(DLQ)}, events with two ids"
        f" {result['events_with_two_ids']}, repeated copies {result['duplicate_copies']},"
        f" store.lost {len(lost)}, store.recovered {len(recovered)}"
    )
    assert cut >= 1
    assert (result["lost"], result["unexpected"], result["events_with_two_ids"]) == (0, 0, 0), result
    assert client.count(DLQ) == 0 and stored_letters(database.url) == []
    assert not logged(workers, "message.retry_scheduled") and not logged(workers, "message.dead_lettered")
    for worker in workers:
        assert worker.running(), worker.tail()
        assert worker.find("store.lost") and len(worker.find("store.recovered")) == len(
            worker.find("store.lost")
        ), worker.tail()
    assert all(line["outage_s"] > 0 for line in recovered)


T_BASE = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
KEYS = [("p1", None), ("p1", "c1"), ("p1", "c2"), ("p2", None), ("p2", "c1")]
# Ids whose order differs between code points and a natural-language collation.
ID_HEADS = ["A", "a", "B", "b", "Z", "z", "é", "0", "~"]


def conflicting_changes(rng: random.Random, count: int) -> list[dict[str, Any]]:
    """`count` OwnerChanged over a few keys, times rising over 40 s with a jitter of 6 s (so
    they are out of order, and often tied to the second), ids random and of mixed case."""
    changes = []
    for number in range(count):
        partner_id, client_id = rng.choice(KEYS)
        owners = ["platform", "partner", "default"] if client_id else ["platform", "partner"]
        owner = rng.choice(owners)
        who = (
            contact(rng.choice(["alice", "bob", "carol"]))
            if owner == "partner" or rng.random() < 0.5
            else None
        )
        changes.append(
            owner_changed(
                owner,
                partner_id,
                client_id,
                partner_contact=who if owner != "default" else None,
                id=f"{rng.choice(ID_HEADS)}{rng.getrandbits(40):010x}",
                time=(T_BASE + timedelta(seconds=number * 40 // count + rng.randrange(6))).isoformat(),
            )
        )
    return changes


def reminders(rng: random.Random) -> list[dict[str, Any]]:
    """Reminders for the same clients: each reminder key sent under one to three event ids."""
    sent = []
    for partner_id, client_id in [("p1", "c1"), ("p1", "c2"), ("p2", "c1"), ("p2", "c9")]:
        for days in (60, 30, 14, 7, 1):
            for _ in range(rng.randint(1, 3)):
                maker = contact(rng.choice(["dora", "dan"]), "client.example")
                sent.append(
                    renewal(
                        client_id,
                        partner_id,
                        decision_maker=maker,
                        days=days,
                        id=f"r-{uuid.uuid4().hex[:12]}",
                    )
                )
    return sent


def scrambled(rng: random.Random, changes: list[Any], extras: list[Any]) -> list[Any]:
    """The changes moved up to 40 places from where their times put them, the extras anywhere."""
    placed = [(number + rng.uniform(0, 40), change) for number, change in enumerate(changes)]
    placed += [(rng.uniform(0, len(changes) + 40), extra) for extra in extras]
    return [message for _, message in sorted(placed, key=lambda pair: pair[0])]


def newest_by_rule(changes: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The domain's rule applied directly: per key, the change with the largest (time, id) stands."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    stamp = lambda e: (datetime.fromisoformat(e["time"]), e["id"])  # noqa: E731
    for event in changes:
        key = (event["data"]["partner_id"], event["data"]["client_id"] or "")
        if key not in newest or stamp(event) > stamp(newest[key]):
            newest[key] = event
    return {
        key: (
            None if e["data"]["owner"] == "default" else e["data"]["owner"],
            e["data"].get("partner_contact") if e["data"]["owner"] != "default" else None,
            e["id"],
        )
        for key, e in newest.items()
    }


def projection(url: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The owner_settings table as (owner, contact, event id) per (partner, client) key."""
    with psycopg.connect(url) as connection:
        rows = connection.execute(
            "SELECT partner_id, client_id, owner, contact, event_id FROM owner_settings"
        )
        return {(p, c): (o, None if k is None else json.loads(k), e) for p, c, o, k, e in rows.fetchall()}


def one_worker_projection(
    server: SparePostgres, messages: list[dict[str, Any]]
) -> dict[tuple[str, str], Any]:
    """What one worker's own code computes from the same events, one at a time, on another database."""
    url = new_database(server).url
    store = open_store(url)
    store.migrate()
    processor = processor_over(store)
    for tag, message in enumerate(messages, 1):
        key = "owner.changed" if message["type"] == "OwnerChanged" else "renewal.approaching"
        body = json.dumps(message).encode()
        processor.process([Delivery(body, {"content_type": "application/json"}, "renewals.events", key, tag)])
    store.close()
    return projection(url)


def publish_at_once(amqp_url: str, messages: list[dict[str, Any]]) -> None:
    """Publish as billing would in a burst: persistent, confirms awaited once for all."""
    connection = connect(amqp_url)
    try:
        confirms = Confirms(connection.channel())
        for message in messages:
            key = "owner.changed" if message["type"] == "OwnerChanged" else "renewal.approaching"
            body = json.dumps(message).encode()
            confirms.publish(
                NAMES.events_exchange,
                key,
                amqp.Message(body, content_type="application/cloudevents+json", delivery_mode=2),
            )
        confirms.wait(connection)
    finally:
        connection.close()


def test_conflicting_owner_changes_across_three_workers_end_as_one_worker_computes(
    server: SparePostgres, database: Database, start_workers: StartWorkers, client: Client, amqp_url: str
) -> None:
    """Hundreds of conflicting OwnerChanged (random times and ids, repeats, shuffled) with reminders among them, shared by three workers: the projection equals one worker's and the rule's, and no reminder gets two ids."""
    rng = random.Random(8)
    changes = conflicting_changes(rng, 400)
    due = reminders(rng)
    messages = scrambled(rng, changes, [*rng.sample(changes, 40), *due, *rng.sample(due, 10)])
    # Small batches, each a little slower between its reads and its writes, so that the three
    # workers' transactions on the same keys overlap all the time.
    workers = start_workers(
        3, {"OwnerChanged": "slow_owner_changes"}, RENEWALS_PREFETCH="20", RENEWALS_BATCH_SIZE="20"
    )
    out = client.observe()
    publish_at_once(amqp_url, messages)
    wait_until(lambda: len(outcomes(workers)) >= len(messages), f"{len(messages)} outcomes", 60)
    handled = outcomes(workers)
    assert len(handled) == len(messages)
    assert all(sum(1 for _ in w.lines() if _.get("event") in OUTCOMES) > 0 for w in workers), "not shared"
    assert {line["event"] for line in handled} >= {"owner.stale_ignored", "message.duplicate_event"}
    stored = projection(database.url)
    assert stored == newest_by_rule(changes)
    assert stored == one_worker_projection(server, messages)
    ids_by_reminder: dict[tuple[str, str, int], set[str]] = {}
    for _method, properties, body in client.drain(out):
        data = json.loads(body)["data"]
        key = (data["client_id"], data["renewal_date"], data["days_until_renewal"])
        ids_by_reminder.setdefault(key, set()).add(properties.message_id)
    expected = {
        (e["data"]["client_id"], e["data"]["renewal_date"], e["data"]["days_until_renewal"]) for e in due
    }
    assert set(ids_by_reminder) == expected
    assert all(len(ids) == 1 for ids in ids_by_reminder.values()), ids_by_reminder
    assert client.count(DLQ) == 0 and stored_letters(database.url) == []


def outbox_row(event_id: str, created_at_us: int) -> tuple[Any, ...]:
    """An outbox row as a worker writes it: a committed notification awaiting its confirm."""
    notification_id = str(uuid.uuid5(uuid.NAMESPACE_URL, event_id))
    body = json.dumps({"id": notification_id, "data": {"causation_id": event_id}}).encode()
    return notification_id, event_id, "notification.requested.decision_maker", body, created_at_us


def test_orphaned_outbox_rows_are_republished_within_one_sweep_and_fresh_ones_are_left_alone(
    database: Database, start_workers: StartWorkers, client: Client
) -> None:
    """Rows a dead worker left (older than the grace) are republished once, within one sweep, by one of two live workers; a fresh row is left alone until it is older than the grace."""
    grace, sweep = 6.0, 0.5  # the grace leaves room to check the fresh row inside it on a slow machine
    workers = start_workers(2, RENEWALS_OUTBOX_GRACE=str(grace), RENEWALS_OUTBOX_SWEEP_INTERVAL=str(sweep))
    out = client.observe()
    now_us = time.time_ns() // 1000
    orphans = [outbox_row(f"orphan-{n}", now_us - 60_000_000) for n in range(5)]
    fresh = outbox_row("fresh", now_us)
    with psycopg.connect(database.url) as connection:
        connection.cursor().executemany(
            "INSERT INTO outbox (notification_id, correlation_id, routing_key, body, created_at_us)"
            " VALUES (%s, %s, %s, %s, %s)",
            [*orphans, fresh],
        )
    inserted = time.monotonic()
    republished = client.take(out, len(orphans), timeout=sweep + 3)
    assert sorted(p.message_id for _, p, _ in republished) == sorted(row[0] for row in orphans)
    assert [body for _, _, body in sorted(republished, key=lambda m: m[1].correlation_id)] == [
        row[3] for row in orphans
    ]
    assert sum(line["count"] for line in logged(workers, "outbox.orphans_republished")) == len(orphans)

    def outbox() -> dict[str, Any]:
        with psycopg.connect(database.url) as connection:
            return dict(connection.execute("SELECT correlation_id, claimed_until_us FROM outbox").fetchall())

    wait_until(lambda: outbox() == {"fresh": None}, "the republished rows deleted", 5)
    time.sleep(max(0.0, inserted + grace / 2 - time.monotonic()))  # several more sweeps
    assert time.monotonic() < inserted + grace, "too slow to check the fresh row within its grace"
    assert outbox() == {"fresh": None} and client.count(out) == 0
    [(_, properties, _)] = client.take(out, 1, timeout=grace + sweep + 3)
    assert (properties.message_id, properties.correlation_id) == (fresh[0], "fresh")
    wait_until(lambda: outbox() == {}, "the fresh row deleted once sent", 5)
    assert client.quiet(out, 2 * sweep)  # claimed by one worker: published once
