"""Issue 25: `renewals topology --migrate` beside a running worker. Without --force it refuses
while consumers are attached; with --force the worker notices its consumer is gone at once
(/readyz 503), handles what it held, and stops with one line when its declaration no longer
matches; a queue deleted and declared again under a worker (what the migration did before) is
noticed on every series, the 3.10 ghost consumer included, and the worker subscribes again.
Every test loses no event and sends none twice."""

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from support.amqp import connect
from support.client import NAMES, Client, PacedPublisher
from support.messages import contact, renewal
from support.polling import wait_until
from support.services import BrokerUnderTest, free_port
from tests.e2e.commands import renewals
from tests.e2e.test_observability import get
from worker.broker.topology import BrokerVersion, declare, topology
from worker.exits import EX_CONFIG
from worker.settings import Settings

DORA = contact("dora", "client.example")
RECONNECT_MAX_DELAY = 2.0
QUIET_OUTBOX = {"RENEWALS_OUTBOX_GRACE": "60"}
"""Rows of a slow batch are not taken for another worker's orphans and sent again (a copy)."""


def stream(prefix: str, count: int) -> list[dict[str, Any]]:
    return [renewal(f"{prefix}{n}", None, decision_maker=DORA, id=f"{prefix}{n}") for n in range(count)]


@dataclass
class Readiness:
    """/readyz polled every 20 ms on a thread: each change of status, with its wall-clock time.
    (A 503 lasts from the consumer's loss to its new subscription: a random wait of 0 to 1 s,
    then a reconnect, which can be shorter than 0.1 s.)"""

    port: int
    changes: list[tuple[float, int | str]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        threading.Thread(target=self._poll, daemon=True).start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                status: int | str = get(self.port, "/readyz")[0]
            except OSError:
                status = "down"
            if not self.changes or self.changes[-1][1] != status:
                self.changes.append((time.time(), status))
            time.sleep(0.02)

    def stop(self) -> list[tuple[float, int | str]]:
        self._stop.set()
        return self.changes

    def relative(self, since: float) -> list[tuple[float, int | str]]:
        return [(round(at - since, 2), status) for at, status in self.changes]


@pytest.fixture
def readiness() -> Iterator[list[Readiness]]:
    probes: list[Readiness] = []
    yield probes
    for probe in probes:
        probe.stop()


def handled(client: Client, queue: str, expected: set[str], timeout: float = 90.0) -> dict[str, int]:
    """Notifications per event id, read until every expected id came (or `timeout`), then 1 s more."""
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout
    quiet_until = None
    while time.monotonic() < deadline:
        method, _, body = client.channel.basic_get(queue, auto_ack=True)
        if method is None:
            if expected <= set(seen):
                quiet_until = quiet_until or time.monotonic() + 1.0
                if time.monotonic() >= quiet_until:
                    break
            time.sleep(0.02)
            continue
        cause = json.loads(body)["data"]["causation_id"]
        seen[cause] = seen.get(cause, 0) + 1
    return seen


def at(line: dict[str, Any]) -> float:
    """A log line's wall-clock time."""
    from datetime import datetime

    return datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00")).timestamp()


@pytest.mark.other_brokers_slow
def test_migrate_beside_a_consuming_worker_is_refused_and_the_worker_never_stops(
    client: Client, start_worker, amqp_url: str, readiness: list[Readiness]
) -> None:
    """While a worker consumes a stream, `topology --migrate` that would move its queue refuses in
    one line naming the queue and its consumer count (exit 78), touches nothing, and the worker
    handles every event once, ready throughout."""
    port = free_port()
    start_worker(RENEWALS_METRICS_PORT=str(port), **QUIET_OUTBOX)
    probe = Readiness(port)
    readiness.append(probe)
    out = client.observe()
    events = stream("refused-", 600)
    publisher = PacedPublisher(amqp_url, events, per_second=150)
    publisher.start()
    time.sleep(1.5)
    result = renewals(amqp_url, "topology", "--migrate", RENEWALS_DELIVERY_LIMIT="30")
    assert result.exit_code == EX_CONFIG, result.output
    errors = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(errors) == 1 and errors[0].startswith("Error: refusing to migrate"), result.stderr
    assert "renewals.worker (1 consumer)" in errors[0] and "--force" in errors[0], errors[0]
    assert "Traceback" not in result.output
    publisher.join(30)
    assert publisher.error is None, publisher.error
    seen = handled(client, out, {e["id"] for e in events})
    assert len(seen) == len(events) and set(seen.values()) == {1}, (len(seen), max(seen.values()))
    assert [status for _, status in probe.stop()] == [200]


def test_a_forced_migration_under_a_worker_is_seen_at_once_and_loses_nothing(
    client: Client, start_worker, amqp_url: str, rabbitmq: BrokerUnderTest, readiness: list[Readiness]
) -> None:
    """`topology --migrate --force` (DELIVERY_LIMIT 30) under a worker consuming a stream at 150/s
    (limit 20): the broker cancels the worker's consumer (the migration leaves it time to, so no
    3.10 ghost is left), the worker is not ready within a second, handles
    what it held, waits while the queue is absent, then stops with one line (exit 78) since its
    declaration no longer matches; restarted with the new limit, it has handled every event once."""
    port = free_port()
    env = {
        "RENEWALS_METRICS_PORT": str(port),
        "RENEWALS_RECONNECT_MAX_DELAY": str(RECONNECT_MAX_DELAY),
        **QUIET_OUTBOX,
    }
    worker = start_worker(**env)
    probe = Readiness(port)
    readiness.append(probe)
    out = client.observe()
    events = stream("forced-", 1500)
    publisher = PacedPublisher(amqp_url, events, per_second=150)
    started = time.time()
    publisher.start()
    time.sleep(3)
    result = renewals(amqp_url, "topology", "--migrate", "--force", RENEWALS_DELIVERY_LIMIT="30")
    migrated_at = time.time()
    assert result.exit_code == 0, result.output
    assert "--force: migrating under 1 consumer(s) of renewals.worker" in result.stderr, result.stderr

    wait_until(lambda: not worker.running(), "the worker to stop on the changed queue", timeout=30)
    assert worker.process is not None and worker.process.returncode == EX_CONFIG, worker.tail()
    [lost] = worker.find("worker.consumer_lost")
    assert "the broker cancelled the consumer" in lost["reason"], lost  # told, not left a 3.10 ghost
    [refusal] = [line for line in worker.lines() if line.get("level") in ("error", "critical")]
    assert "x-delivery-limit" in refusal["error"] and "renewals topology --migrate" in refusal["error"]
    changes = probe.stop()
    first_503 = next(when for when, status in changes if status == 503)
    assert first_503 - at(lost) < 1.0, (probe.relative(at(lost)), lost)

    publisher.join(30)
    assert publisher.error is None, publisher.error
    start_worker(RENEWALS_DELIVERY_LIMIT="30", **QUIET_OUTBOX)
    seen = handled(client, out, {e["id"] for e in events})
    assert len(seen) == len(events) and set(seen.values()) == {1}, (len(seen), max(seen.values()))
    print(
        f"FIGURES rabbitmq-{rabbitmq.version} forced migrate: handled {len(seen)}/{len(events)},"
        f" sent twice {sum(1 for n in seen.values() if n > 1)}, consumer lost at"
        f" {at(lost) - started:.2f}s, readyz 503 {first_503 - at(lost):.2f}s after,"
        f" worker stopped (exit 78) {refusal and at(refusal) - at(lost):.2f}s after, migrate returned at"
        f" {migrated_at - started:.2f}s; readyz {probe.relative(started)}"
    )


@pytest.mark.other_brokers_slow
def test_a_queue_deleted_and_declared_again_under_the_worker_is_noticed_and_subscribed_again(
    client: Client, start_worker, amqp_url: str, rabbitmq: BrokerUnderTest, readiness: list[Readiness]
) -> None:
    """The worker queue deleted and at once declared again while the worker holds a burst
    unacknowledged (what `--migrate` did before): the worker says so (`worker.consumer_lost`),
    /readyz answers 503, it handles what it held and subscribes again within the reconnect
    backoff; every event is handled once. On 3.10 the broker sends no cancel (the consumer lives
    on as a ghost): the watch finds messages ready and none delivered."""
    port = free_port()
    worker = start_worker(
        faults={"RenewalApproaching": "sluggish"},
        RENEWALS_METRICS_PORT=str(port),
        RENEWALS_PREFETCH="200",
        RENEWALS_RECONNECT_MAX_DELAY=str(RECONNECT_MAX_DELAY),
        **QUIET_OUTBOX,
    )
    probe = Readiness(port)
    readiness.append(probe)
    out = client.observe()
    held, after = stream("held-", 150), stream("after-", 400)
    client.publish(held)
    wait_until(lambda: client.count(NAMES.queue) == 0, "the burst in the worker's hands")
    started = time.time()
    connection = connect(amqp_url)
    channel = connection.channel()
    channel.queue_delete(NAMES.queue)
    declare(channel, topology(Settings(), BrokerVersion.of(connection)))
    connection.close()
    client.publish(after)

    seen = handled(client, out, {e["id"] for e in held + after})
    assert len(seen) == len(held) + len(after) and set(seen.values()) == {1}, (
        len(seen),
        max(seen.values(), default=0),
        worker.tail(),
    )
    [lost] = worker.find("worker.consumer_lost")
    consuming = worker.find("worker.consuming")
    assert len(consuming) == 2, consuming
    resubscribed = at(consuming[1]) - at(lost)
    assert resubscribed < RECONNECT_MAX_DELAY + 1.5, resubscribed
    changes = probe.stop()
    statuses = [status for when, status in changes if when >= started - 0.2]
    assert statuses[:3] == [200, 503, 200] or statuses[:2] == [503, 200], probe.relative(started)
    print(
        f"FIGURES rabbitmq-{rabbitmq.version} queue deleted under the worker: handled"
        f" {len(seen)}/{len(held) + len(after)}, sent twice {sum(1 for n in seen.values() if n > 1)},"
        f" noticed {at(lost) - started:.2f}s after the delete ({lost['reason']}), subscribed again"
        f" {resubscribed:.2f}s later; readyz {probe.relative(started)}"
    )


@pytest.mark.any_broker
def test_a_worker_waits_while_a_migration_declares_its_queue_again_instead_of_creating_it(
    client: Client, start_worker, amqp_url: str
) -> None:
    """With `renewals.worker.migrating` present and `renewals.worker` absent (a migration between
    deleting the queue and declaring it again), a starting worker creates nothing and is not
    ready, saying why; once the queue is declared it subscribes and works."""
    connection = connect(amqp_url)
    plan = topology(Settings(), BrokerVersion.of(connection))
    channel = connection.channel()
    channel.queue_declare(
        NAMES.queue + ".migrating", durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"}
    )
    port = free_port()
    worker = start_worker(
        wait=False, RENEWALS_METRICS_PORT=str(port), RENEWALS_RECONNECT_MAX_DELAY=str(RECONNECT_MAX_DELAY)
    )
    [waiting, *_] = worker.wait_for("worker.waiting_for_migration", count=2)
    assert "renewals topology --migrate" in waiting["reason"], waiting
    status, body = get(port, "/readyz")
    assert status == 503 and json.loads(body)["consuming"] is False, body
    with pytest.raises(Exception, match="NOT_FOUND"):
        connection.channel().queue_declare(NAMES.queue, passive=True)

    declare(connection.channel(), plan)
    connection.close()
    worker.wait_for("worker.consuming", timeout=30)
    out = client.observe()
    client.publish(stream("after-migration-", 1))
    [(_, _, body)] = client.take(out, 1)
    assert json.loads(body)["data"]["causation_id"] == "after-migration-0"
