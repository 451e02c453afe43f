"""The third red team (issue 18), end to end: each finding through the real worker process and
the real broker, read back by an independent client (pika), never through the dlq tools.

- an id longer than an AMQP short string (255 bytes) is dead-lettered where it enters, and an
  outbox row that cannot be encoded (left by an older release) is set aside alone, on every
  store, while the rows after it are published and no worker stops;
- a body of 40 MB is dead-lettered within its own size in memory;
- the HTTP endpoint survives 2,000 idle connections and a slowloris (test_http_endpoint.py);
- a correct owner change is not lost to one stamped from the future;
- one reminder keeps one notification id across event ids and pruning.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.client import NAMES, Client
from support.messages import contact, encode, owner_changed, renewal
from support.polling import wait_until
from support.worker_process import WorkerProcess
from tests.e2e.conftest import FAST_RETRIES, StartWorker
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


def test_ids_over_255_bytes_are_dead_lettered_where_they_enter_and_the_worker_runs_on(
    start_worker: StartWorker, client: Client
) -> None:
    """An event id of 256 characters, or 86 x "€" (258 bytes), a partner, client or user id over 255 bytes: each is dead-lettered at once (invalid_envelope or invalid_payload, saying how many bytes), its neighbours are notified, an id of exactly 255 bytes becomes the correlation_id, and the worker never stops."""
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
    letters = client.take(DLQ, len(poisons))
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
