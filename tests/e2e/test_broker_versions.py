"""What differs between RabbitMQ 3.10, 4.0 and 4.3, proved on each through the real worker:
no queue of ours drops a message, reading dead letters costs none, an idle worker keeps its
connections, a broker outage leaves it alive but not ready, and queues an earlier release
declared are migrated without losing a message."""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pika
import pytest

from support.amqp import connect
from support.client import NAMES, Client
from support.messages import contact, renewal
from support.polling import wait_until
from support.services import BrokerUnderTest, free_port
from support.tcp_proxy import TcpProxy
from support.worker_process import WorkerProcess
from tests.e2e.commands import dead_letters, ok, renewals, wait_for_dead_letters
from tests.e2e.test_observability import get, samples
from worker.broker.migration import HOLDING_SUFFIX
from worker.broker.topology import BrokerVersion, declare, topology
from worker.settings import Settings

DORA = contact("dora", "client.example")
DLQ = NAMES.dead_letter_queue
EVENTS = NAMES.events_exchange


def test_an_idle_worker_keeps_its_connections(start_worker) -> None:
    """Eight seconds without a message, heartbeats every second: not one connection is lost
    (both connections have their heartbeats read and sent, the publishing one included; one
    that was not would be dropped after two missed intervals, at the latest after three)."""
    port = free_port()
    worker = start_worker(RENEWALS_HEARTBEAT="1", RENEWALS_METRICS_PORT=str(port))
    time.sleep(8)
    assert worker.running(), worker.tail()
    assert not worker.find("broker.connection_lost"), worker.find("broker.connection_lost")
    _, scrape = get(port, "/metrics")
    assert samples(scrape).get('renewals_reconnects_total{target="broker"}', 0.0) == 0.0
    assert get(port, "/readyz")[0] == 200


def test_a_broker_outage_keeps_the_worker_alive_but_not_ready(
    client: Client, amqp_url: str, tmp_path: Path
) -> None:
    """The broker is away for longer than HEALTH_STALE_AFTER: /healthz stays 200 (the worker is
    alive, waiting to reconnect), /readyz is 503 until it is back, and then work flows again."""
    port = free_port()
    with TcpProxy(amqp_url) as proxy:
        worker = WorkerProcess(
            proxy.url,
            tmp_path,
            env={
                "RENEWALS_METRICS_PORT": str(port),
                "RENEWALS_HEALTH_STALE_AFTER": "2",
                "RENEWALS_RECONNECT_MAX_DELAY": "1",
            },
        ).start()
        try:
            assert wait_until(lambda: get(port, "/readyz")[0] == 200, "ready")
            proxy.cut()
            worker.wait_for("broker.connection_lost")
            seen = set()
            deadline = time.monotonic() + 6  # three times HEALTH_STALE_AFTER
            while time.monotonic() < deadline:
                seen.add((get(port, "/healthz")[0], get(port, "/readyz")[0]))
                time.sleep(0.2)
            assert seen == {(200, 503)}, seen
            proxy.restore()
            assert wait_until(lambda: get(port, "/readyz")[0] == 200, "ready again", timeout=30)
            out = client.observe()
            client.publish([renewal("after-outage", None, decision_maker=DORA, id="after-outage")])
            [(_, _, body)] = client.take(out, 1)
            assert json.loads(body)["data"]["causation_id"] == "after-outage"
        finally:
            worker.kill()


def rejected_until_dead_lettered(amqp_url: str, event: dict[str, Any]) -> None:
    """Publish `event` to the worker's queue and give it back with basic.reject (which every
    series counts) until the broker dead-letters it for its delivery limit."""
    client = Client(amqp_url)
    try:
        client.publish([event])
        for _ in range(10):
            method, _, _ = client.channel.basic_get(NAMES.queue)
            if method is None:
                if client.count(DLQ) >= 1:
                    return
                time.sleep(0.1)
                continue
            client.channel.basic_reject(method.delivery_tag, requeue=True)
        wait_until(lambda: client.count(DLQ) >= 1, "the broker to dead-letter for the delivery limit")
    finally:
        client.close()


def test_reading_dead_letters_never_costs_one(
    client: Client, start_worker, amqp_url: str, store_url: str, tmp_path: Path
) -> None:
    """Dead letters of several reasons, one the broker dead-lettered for the delivery limit (on
    4.3 it arrives with its count carried over), are moved into the store once each; they
    survive 30 `dlq list` runs, a `show`, an `export` and the replay of one of them: every
    letter not replayed is still new, and the replay says what it did with the one."""
    limit = {"RENEWALS_DELIVERY_LIMIT": "1"}
    store = {"RENEWALS_STORE_URL": store_url}
    ok(renewals(amqp_url, "topology", "--declare", **limit))
    rejected_until_dead_lettered(amqp_url, renewal("c-limit", None, decision_maker=DORA, id="by-the-broker"))
    worker = start_worker(**limit)
    client.publish([renewal("c1", "p-none", id="nobody")])
    client.publish([b"{not json"], content_type="application/json", message_id="not-json")
    wait_for_dead_letters(client, 3, store_url)
    worker.stop()

    before = dead_letters(amqp_url, **store)
    assert {row["reason"] for row in before} == {"delivery_limit", "no_recipient", "invalid_json"}
    for _ in range(29):
        ok(renewals(amqp_url, "dlq", "list", **store))
    assert dead_letters(amqp_url, **store) == before
    ok(renewals(amqp_url, "dlq", "show", "by-the-broker", **store))
    ok(renewals(amqp_url, "dlq", "export", "--out", str(tmp_path / "letters.jsonl"), **store))
    replayed = ok(renewals(amqp_url, "dlq", "replay", "--id", "nobody", "--json", **store))
    assert json.loads(replayed.stdout)["replayed"] == ["nobody"], replayed.stdout
    after = dead_letters(amqp_url, **store)
    assert [row["id"] for row in after] == [row["id"] for row in before if row["id"] != "nobody"]
    assert client.count(DLQ) == 0  # the queue is only their transport, on every series
    assert client.count(NAMES.queue) == 1  # the replayed one waits for the (stopped) worker


# Upgrades --------------------------------------------------------------------------------------

PREVIOUS_RELEASE = BrokerVersion(3, 10)
"""The previous release declared every queue as today's plan does for 3.10, on every broker."""


@pytest.fixture
def long_retries() -> Iterator[dict[str, str]]:
    """A retry tier whose messages wait ten minutes: whatever sits there must still be there after."""
    yield {"RENEWALS_RETRY_DELAYS": "[600]"}


def test_queues_of_the_previous_release_are_migrated_with_every_message(
    client: Client, amqp_url: str, rabbitmq: BrokerUnderTest, long_retries: dict[str, str], tmp_path: Path
) -> None:
    """Queues declared as the previous release declared them, with messages in each: on 4.x the
    worker refuses them in one line that names `renewals topology --migrate`; the migration
    keeps every message; the worker then starts and handles what waited for it."""
    settings = Settings(retry_delays=(600.0,))  # type: ignore[call-arg]  # pydantic-settings kwargs
    tier = settings.retry_queue(1)[0]
    connection = connect(amqp_url)
    declare(connection.channel(), topology(settings, PREVIOUS_RELEASE))
    connection.close()
    client.publish([renewal(f"c{n}", None, decision_maker=DORA, id=f"waiting-{n}") for n in range(3)])
    waiting = {DLQ: [b"dead-1", b"dead-2"], NAMES.unrouted_queue: [b"unrouted-1"], tier: [b"retry-1"]}
    for queue, bodies in waiting.items():
        for body in bodies:
            client.channel.basic_publish(
                "", queue, body, pika.BasicProperties(delivery_mode=2, headers={"k": queue})
            )
    counts = {queue: client.count(queue) for queue in [*waiting, NAMES.queue]}

    worker = WorkerProcess(amqp_url, tmp_path, env=long_retries)
    if BrokerVersion.parse(rabbitmq.version).limits_by_default:
        worker.start(wait=False)
        wait_until(lambda: not worker.running(), "the worker to refuse the old queues")
        assert worker.process is not None and worker.process.returncode == 78
        [refusal] = [line for line in worker.lines() if line.get("level") in ("error", "critical")]
        assert "renewals topology --migrate" in json.dumps(refusal), refusal

    migrated = ok(renewals(amqp_url, "topology", "--migrate", **long_retries))
    expected = "migrated 3 queue(s)" if rabbitmq.version != "3.10" else "nothing to migrate"
    assert expected in migrated.stderr, migrated.stderr
    assert {queue: client.count(queue) for queue in counts} == counts
    for queue, bodies in waiting.items():
        assert _peek(client, queue) == [(body, queue) for body in bodies]

    out = client.observe()
    worker.start()
    got = client.take(out, 3)
    assert {json.loads(body)["data"]["causation_id"] for _, _, body in got} == {
        f"waiting-{n}" for n in range(3)
    }
    worker.kill()


def test_a_migration_interrupted_midway_resumes_and_keeps_everything(
    client: Client, amqp_url: str, rabbitmq: BrokerUnderTest
) -> None:
    """A holding queue left by a killed migration, beside the old queue: running the command again
    brings every message home, whatever the series."""
    settings = Settings()
    connection = connect(amqp_url)
    declare(connection.channel(), topology(settings, PREVIOUS_RELEASE))
    channel = connection.channel()
    holding = DLQ + HOLDING_SUFFIX
    channel.queue_declare(holding, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
    connection.close()
    for queue, body in ((holding, b"moved-out-1"), (holding, b"moved-out-2"), (DLQ, b"not-yet-moved")):
        client.channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))

    printed = ok(renewals(amqp_url, "topology", "--migrate")).stderr
    assert f"migrating {DLQ} (resuming)" in printed, printed
    assert sorted(body for body, _ in _peek(client, DLQ)) == [
        b"moved-out-1",
        b"moved-out-2",
        b"not-yet-moved",
    ]
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        client.connection.channel().queue_declare(holding, passive=True)


def _peek(client: Client, queue: str) -> list[tuple[bytes, Any]]:
    """Every message of `queue` in order, (body, its `k` header); all given back at the end."""
    channel = client.connection.channel()
    seen = []
    while True:
        method, properties, body = channel.basic_get(queue)
        if method is None:
            break
        seen.append((body, (properties.headers or {}).get("k")))
    channel.close()  # gives every message back, in place
    wait_until(lambda: client.count(queue) == len(seen), f"{queue} to take its messages back")
    return seen
