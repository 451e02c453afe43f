"""The third red team (issue 18), end to end: each finding through the real worker process and
the real broker, read back by an independent client (pika), never through the dlq tools.

- critical: an id longer than an AMQP short string (255 bytes) is dead-lettered where it
  enters; an outbox row that cannot be encoded (left by an older release) is set aside alone,
  on SQLite and PostgreSQL, while the rows after it are published and no worker stops; a
  notification a bug made unencodable fails its event alone, before the commit;
- high: the HTTP endpoint survives 2,000 idle connections and a slowloris;
- medium: a correct owner change is not lost to one stamped from the future;
- low: one reminder keeps one notification id across event ids and pruning; a body of 40 MB
  is dead-lettered within about its own size in memory.
"""

import hashlib
import json
import os
import resource
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from support.client import NAMES, Client
from support.messages import contact, encode, owner_changed, renewal
from support.polling import wait_until
from support.records import recorded, stored_letters
from support.services import free_port, rabbitmqctl_for
from support.worker_process import WorkerProcess
from tests.e2e.conftest import FAST_RETRIES, StartWorker
from worker.dead_letters.drain import MAX_STORED_BODY
from worker.store import OutboxRow, open_store

DORA = contact("dora", "client.example")
ALICE = contact("alice")
DLQ = NAMES.dead_letter_queue
MiB = 1024 * 1024


def good_reminders(prefix: str, count: int) -> list[dict[str, Any]]:
    """Reminders that must each become a notification (a direct customer with a decision maker)."""
    return [renewal(f"{prefix}-c{n}", None, decision_maker=DORA, id=f"{prefix}-ok-{n}") for n in range(count)]


def unshaken(worker: WorkerProcess, pid: int) -> None:
    """The same process, still running, that never lost its broker connection nor started again."""
    assert worker.running() and worker.pid == pid, worker.tail()
    assert not worker.find("broker.connection_lost"), worker.tail()
    assert len(worker.find("worker.starting")) == 1, worker.tail()


def headers_of(message: tuple[Any, Any, bytes]) -> dict[str, Any]:
    headers: dict[str, Any] = message[1].headers or {}
    return headers


# Critical: ids over 255 bytes ---------------------------------------------------------------------


@pytest.mark.other_brokers_slow
def test_ids_over_255_bytes_are_dead_lettered_where_they_enter_and_the_worker_runs_on(
    start_worker: StartWorker, client: Client, tmp_path: Path
) -> None:
    """An event id of 256 characters, or 86 x "€" (258 bytes), a partner, client or user id over 255 bytes: each is dead-lettered at once (invalid_envelope or invalid_payload, saying how many bytes), its neighbours are notified, an id of exactly 255 bytes becomes the correlation_id, and the worker never stops."""
    store_url = f"sqlite:///{tmp_path / 'renewals.db'}"  # start_worker's store
    worker = start_worker()
    out = client.observe()
    longest = "€" * 85  # 255 bytes
    poisons = {
        "e" * 256: renewal("c-e", None, decision_maker=DORA, id="e" * 256),
        "€" * 86: renewal("c-euro", None, decision_maker=DORA, id="€" * 86),
        "client": renewal("ü" * 128, None, decision_maker=DORA, id="long-client"),
        "partner": owner_changed("platform", "€" * 86, id="long-partner"),
        "user": renewal("c-u", None, decision_maker={**DORA, "user_id": "😀" * 64}, id="long-user"),
    }
    good = [
        *good_reminders("bytes", len(poisons)),
        renewal("c-longest", None, decision_maker=DORA, id=longest),
    ]
    for neighbour, poison in zip(good, poisons.values(), strict=False):
        client.publish([neighbour, poison])
    client.publish(good[len(poisons) :])
    notified = client.take(out, len(good))
    assert sorted(properties.correlation_id for _, properties, _ in notified) == sorted(e["id"] for e in good)
    letters = recorded(store_url, len(poisons))
    reasons = sorted(
        (headers_of(letter)["x-error-reason"], headers_of(letter)["x-error-detail"]) for letter in letters
    )
    assert [reason for reason, _ in reasons] == ["invalid_envelope"] * 2 + ["invalid_payload"] * 3
    details = " | ".join(detail for _, detail in reasons)
    for expected in (
        "id: String should have at most 255 characters",
        "id: String should have at most 255 bytes in UTF-8 (an AMQP short string), not 258",
        "data.client_id: String should have at most 255 bytes in UTF-8 (an AMQP short string), not 256",
        "data.partner_id: String should have at most 255 bytes in UTF-8 (an AMQP short string), not 258",
        "data.decision_maker.user_id: String should have at most 255 bytes",
    ):
        assert expected in details, details
    assert {letter[2] for letter in letters} == {encode(poison) for poison in poisons.values()}
    assert client.quiet(out) and client.count(DLQ) == 0
    unshaken(worker, worker.pid)


# Critical: a row that cannot be encoded fails alone -----------------------------------------------


def stuck_rows(count: int) -> list[OutboxRow]:
    """Committed notifications as an older release left them, one in the middle with an event id
    of 258 bytes as its correlation_id (what crashed every worker in turn)."""
    rows = []
    for n in range(count):
        event_id = "€" * 86 if n == count // 2 else f"stuck-{n}"
        notification_id = f"00000000-0000-5000-8000-{n:012d}"
        body = json.dumps({"id": notification_id, "data": {"causation_id": event_id}}).encode()
        rows.append(OutboxRow(notification_id, event_id, "notification.requested.decision_maker", body))
    return rows


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'renewals.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def workers(amqp_url: str, store_url: str, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    """Two workers on one store (on SQLite, one at a time shares the file the same way)."""
    started = [
        WorkerProcess(amqp_url, tmp_path, store_url=store_url, name=f"w{n}", env=FAST_RETRIES)
        for n in range(2)
    ]
    yield started
    for worker in started:
        worker.kill()


@pytest.mark.other_brokers_slow
def test_an_outbox_row_that_cannot_be_encoded_is_set_aside_alone_and_no_worker_stops(
    store_url: str, workers: list[WorkerProcess], client: Client
) -> None:
    """Seven committed rows older than the grace, the middle one with a correlation_id of 258 bytes: the sweep publishes the six others, sets that one aside in the store with the reason (logged outbox.set_aside, never counted as pending again), every worker keeps running and a restart publishes nothing twice."""
    first, second = workers
    first.start()
    second.start()
    out = client.observe()
    store = open_store(store_url)
    rows = stuck_rows(7)
    with store.transaction() as transaction:
        transaction.enqueue(rows, time.time_ns() // 1000 - 60_000_000)
    published = client.take(out, len(rows) - 1)
    assert sorted(p.message_id for _, p, _ in published) == sorted(
        row.notification_id for row in rows if row.correlation_id != "€" * 86
    )
    set_aside = wait_until(
        lambda: first.find("outbox.set_aside") + second.find("outbox.set_aside"), "set aside"
    )
    assert len(set_aside) == 1 and "correlation_id is 258 bytes" in set_aside[0]["reason"]
    wait_until(lambda: store.outbox_stats()[0] == 0, "the published rows deleted")
    [(row, reason)] = store.set_aside_rows()
    assert row.correlation_id == "€" * 86 and "more than an AMQP short string's 255" in reason

    client.publish(good_reminders("after", 3))
    assert len(client.take(out, 3)) == 3
    for worker in workers:
        unshaken(worker, worker.pid)
    first.stop()
    first.start()
    client.publish(good_reminders("restarted", 2))
    assert len(client.take(out, 2)) == 2 and client.quiet(out, 1.5)
    assert len(first.find("outbox.set_aside")) + len(second.find("outbox.set_aside")) == 1
    assert len(store.set_aside_rows()) == 1
    store.close()


# High: the HTTP endpoint survives its clients -----------------------------------------------------


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, float]:
    """Status and seconds taken, on a new connection."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, time.monotonic() - started


class Slowloris(threading.Thread):
    """`count` connections, each sending its request head one byte every `every` seconds, and
    opening again whenever the server closes it."""

    def __init__(self, port: int, count: int, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.port, self.count, self.every = port, count, every
        self.stop = threading.Event()
        self.reopened = 0

    def run(self) -> None:
        head = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 10_000
        socks = [socket.create_connection(("127.0.0.1", self.port), timeout=2) for _ in range(self.count)]
        sent = [0] * self.count
        while not self.stop.wait(self.every):
            for index, sock in enumerate(socks):
                try:
                    sock.send(head[sent[index] : sent[index] + 1])
                    sent[index] = (sent[index] + 1) % len(head)
                except OSError:
                    sock.close()
                    socks[index] = socket.create_connection(("127.0.0.1", self.port), timeout=2)
                    sent[index] = 0
                    self.reopened += 1
        for sock in socks:
            sock.close()


def worker_descriptors(worker: WorkerProcess) -> int:
    return len(os.listdir(f"/proc/{worker.pid}/fd"))


def close_worker_connections(amqp_url: str, vhost: str) -> int:
    """rabbitmqctl close_connection on every py-amqp connection of `vhost`; how many."""
    ctl = rabbitmqctl_for(amqp_url)
    listed = subprocess.run(
        [*ctl, "list_connections", "pid", "vhost", "client_properties", "--no-table-headers"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    pids = [
        line.split("\t")[0] for line in listed.splitlines() if f"\t{vhost}\t" in line and "py-amqp" in line
    ]
    for pid in pids:
        subprocess.run([*ctl, "close_connection", pid, "closed by the test"], capture_output=True,
                       timeout=60, check=True)  # fmt: skip
    return len(pids)


@pytest.mark.any_broker  # the HTTP endpoint's: the broker's version plays no part
def test_2000_idle_connections_and_a_slowloris_slow_neither_readyz_nor_consumption(
    start_worker: StartWorker, client: Client, amqp_url: str
) -> None:
    """With the worker held to 256 file descriptors, 2,000 idle connections and 20 slowloris connections on its endpoint: /readyz answers 200 within a second every time, unknown paths are 404, the worker holds under 150 descriptors, reminders are notified about as fast as without them, and a broker connection closed meanwhile is opened again (it used to fail with EMFILE)."""
    port = free_port()
    worker = start_worker(RENEWALS_METRICS_PORT=str(port))
    resource.prlimit(worker.pid, resource.RLIMIT_NOFILE, (256, 256))
    out = client.observe()
    wait_until(lambda: http_get(port, "/readyz")[0] == 200, "ready")

    def notify(prefix: str, count: int) -> float:
        started = time.monotonic()
        client.publish(good_reminders(prefix, count))
        assert len(client.take(out, count, timeout=30)) == count
        return time.monotonic() - started

    baseline = notify("before", 200)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4096)), hard))
    idle: list[socket.socket] = []
    slowloris = Slowloris(port, 20)
    try:
        for _ in range(2000):
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        slowloris.start()
        time.sleep(1.0)
        for _ in range(20):
            status, took = http_get(port, "/readyz")
            assert status == 200 and took < 1.0, (status, took)
        assert http_get(port, "/")[0] == http_get(port, "/nope")[0] == 404
        assert worker_descriptors(worker) < 150, worker_descriptors(worker)
        during = notify("during", 200)
        assert during < max(3 * baseline, baseline + 2.0), (baseline, during)
        assert (
            close_worker_connections(amqp_url, urllib.parse.unquote(urllib.parse.urlsplit(amqp_url).path[1:]))
            >= 1
        )
        worker.wait_for("worker.consuming", count=2, timeout=30)
        assert notify("reconnected", 10) < 10
        assert http_get(port, "/readyz")[0] == 200
        # The server closes slow connections at their deadline (5 s after each was opened).
        wait_until(lambda: slowloris.reopened >= 20, "the slowloris connections closed by the server", 15)
    finally:
        slowloris.stop.set()
        if slowloris.ident is not None:
            slowloris.join(5)
        for sock in idle:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert worker.running() and not [line for line in worker.lines() if "EMFILE" in json.dumps(line)]


# Medium: a change from a fast clock does not outrank a correct one made after it arrived ---------


@pytest.mark.other_brokers_slow
def test_a_correct_owner_change_is_not_lost_to_one_stamped_from_the_future(
    start_worker: StartWorker, client: Client
) -> None:
    """An OwnerChanged stamped 4 minutes ahead (within MAX_CLOCK_SKEW) makes the partner the owner; a correct change to platform made after it was handled is applied, not ignored as stale, and the next reminder goes to the decision maker under the platform."""
    worker = start_worker()
    out = client.observe()
    ahead = datetime.now(UTC) + timedelta(minutes=4)
    client.publish(
        [owner_changed("partner", "p-skew", partner_contact=ALICE, id="fast-clock", time=ahead.isoformat())]
    )
    worker.wait_for("owner.changed")
    correct = datetime.now(UTC)  # after the fast clock's change was handled, before its stamped time
    assert correct < ahead
    client.publish([owner_changed("platform", "p-skew", id="correct", time=correct.isoformat())])
    worker.wait_for("owner.changed", count=2)
    assert not worker.find("owner.stale_ignored")
    client.publish([renewal("c-skew", "p-skew", decision_maker=DORA, id="r-skew")])
    [(_, _, body)] = client.take(out, 1)
    data = json.loads(body)["data"]
    assert (data["owner"], data["resolved_from"], data["audience"]) == (
        "platform",
        "partner_default",
        "decision_maker",
    )
    assert [r["email"] for r in data["to"]] == [DORA["email"]] and data["cc"] == []


# Low: one reminder, one notification id, across event ids and pruning ------------------------------


@pytest.mark.other_brokers_slow
def test_a_backfilled_reminder_keeps_its_notification_id_after_its_key_was_pruned(
    start_worker: StartWorker, client: Client, tmp_path: Path
) -> None:
    """A reminder for a renewal date long past is notified; its key is pruned; the same reminder under another event id (a backfill) is notified again under the same notification id, so consumers deduplicate it; another reminder of the client has another id."""
    worker = start_worker(RENEWALS_REMINDER_RETENTION_DAYS="0", RENEWALS_PRUNE_INTERVAL="0.3")
    out = client.observe()
    past = dict(renewal_date="2026-01-05", days=30)
    client.publish([renewal("c-back", None, decision_maker=DORA, id="original", **past)])
    [(_, first, _)] = client.take(out, 1)
    store = open_store(f"sqlite:///{tmp_path / 'renewals.db'}")
    try:
        wait_until(
            lambda: store.execute("SELECT count(*) FROM reminders").fetchone()[0] == 0, "the key pruned"
        )
    finally:
        store.close()
    client.publish([renewal("c-back", None, decision_maker=DORA, id="backfill", **past)])
    client.publish(
        [renewal("c-back", None, decision_maker=DORA, id="week", renewal_date="2026-01-05", days=7)]
    )
    (_, again, _), (_, week, _) = client.take(out, 2)
    assert (first.correlation_id, again.correlation_id, week.correlation_id) == (
        "original",
        "backfill",
        "week",
    )
    assert first.message_id == again.message_id != week.message_id
    assert not worker.find("renewal.duplicate_reminder")


@pytest.mark.other_brokers_slow
def test_a_notification_that_could_not_be_encoded_fails_its_event_alone_before_the_commit(
    start_worker: StartWorker, client: Client, tmp_path: Path
) -> None:
    """A handler bug makes one notification unencodable (a correlation_id of 300 bytes): that event is retried and then dead-lettered as retries_exhausted naming the cause, nothing of it is committed or published, its neighbours in the same batches are notified, and the worker never stops."""
    store_url = f"sqlite:///{tmp_path / 'renewals.db'}"  # start_worker's store
    worker = start_worker(faults={"RenewalApproaching": "unencodable_for_long_causes"})
    out = client.observe()
    good = good_reminders("enc", 4)
    client.publish(
        [good[0], good[1], renewal("unencodable-1", None, decision_maker=DORA, id="bug"), *good[2:]]
    )
    notified = client.take(out, len(good))
    assert sorted(p.correlation_id for _, p, _ in notified) == sorted(e["id"] for e in good)
    [letter] = recorded(store_url, 1)
    headers = headers_of(letter)
    assert headers["x-error-reason"] == "retries_exhausted" and headers["x-attempts"] == 5
    assert "Unencodable: correlation_id (the event id) is 300 bytes" in headers["x-error-detail"]
    assert client.quiet(out) and not worker.find("outbox.set_aside")
    unshaken(worker, worker.pid)


# Low: a body of 40 MB costs its size once ----------------------------------------------------------


@pytest.mark.broker_versions("3.10")
def test_a_40_mb_body_is_dead_lettered_with_the_worker_s_peak_memory_growing_by_about_its_size(
    start_worker: StartWorker, client: Client, tmp_path: Path
) -> None:
    """A 40 MiB body between two good reminders: dead-lettered as too_large, recorded in the store (its first 16 MiB, its size and digest), the neighbours notified, and the worker's peak resident memory (VmHWM) grows by less than 2.5x the body: about once while the worker reads and dead-letters it (tests/unit/test_large_bodies.py holds that path under 1.25x; it was 3x), and once more while the drain receives it to record it; plus, once, the part of it the store keeps (16 MiB), whose pages SQLite's page cache (32 MiB since issue 30; it was 2) holds until the letter's transaction commits. Only a broker that takes 40 MiB can send it: RabbitMQ 4.x refuses anything over 16 MiB at the door."""
    store_url = f"sqlite:///{tmp_path / 'renewals.db'}"  # start_worker's store
    worker = start_worker()
    out = client.observe()
    if not client.connection._impl.server_properties["version"].startswith("3."):
        pytest.fail("only RabbitMQ 3.x takes a 40 MiB message; this test is marked to run there")
    body = b"{" + b" " * (40 * MiB - 2) + b"}"
    good = good_reminders("big", 2)
    client.publish([good[0]])
    client.take(out, 1)
    peak_before = worker.status_kb("VmHWM")
    client.publish([body], content_type="application/json")
    client.publish([good[1]])
    client.take(out, 1)
    [stored] = wait_until(lambda: stored_letters(store_url), "the dead letter recorded", timeout=60)
    grown = (worker.status_kb("VmHWM") - peak_before) * 1024
    assert stored.summary.reason == "too_large"
    if stored.body_truncated:  # kept cut beyond 16 MiB, with the whole body's digest
        assert stored.body_sha256 == hashlib.sha256(body).hexdigest() and body.startswith(stored.body)
    else:
        assert stored.body == body
    assert grown < 2.5 * len(body) + MAX_STORED_BODY, (
        f"VmHWM grew by {grown / MiB:.0f} MiB for a body of {len(body) / MiB:.0f} MiB"
    )
    unshaken(worker, worker.pid)
