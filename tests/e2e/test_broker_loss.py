"""The broker goes away or pushes back: the worker waits, reconnects and loses nothing.
These run on a spare RabbitMQ node of their own, so restarting it disturbs no other test."""

import time
from collections.abc import Iterator
from pathlib import Path

import pika
import pytest

from support.client import NAMES, Client, audit
from support.messages import contact, renewal
from support.polling import wait_until
from support.spare_broker import SpareBroker, spare_broker
from support.worker_process import WorkerProcess

DORA = contact("dora", "client.example")
SLOW = {"RenewalApproaching": "slow"}


@pytest.fixture(scope="module")
def spare() -> Iterator[SpareBroker]:
    with spare_broker() as broker:
        yield broker


@pytest.fixture
def worker_on_spare(spare: SpareBroker, tmp_path: Path) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(spare.url, tmp_path, env={"RENEWALS_CONFIRM_TIMEOUT": "2"}, faults=SLOW)
    yield worker
    worker.kill()


def durable_observer(client: Client, name: str) -> str:
    """Survives a broker restart, unlike an exclusive queue."""
    client.channel.queue_declare(name, durable=True)
    client.channel.queue_bind(name, NAMES.notifications_exchange, "#")
    return name


def collect(url: str, queue: str, expected: set[str], timeout: float = 90.0) -> list:
    """Everything on `queue` until every expected event has a notification (reconnecting as needed)."""
    import json

    outputs: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client = Client(url)
            while time.monotonic() < deadline:
                outputs += client.drain(queue)
                if expected <= {json.loads(body)["data"]["causation_id"] for _, _, body in outputs}:
                    time.sleep(0.5)
                    outputs += client.drain(queue)
                    client.close()
                    return outputs
                time.sleep(0.1)
        except pika.exceptions.AMQPError:
            time.sleep(0.5)
    return outputs


def test_a_broker_restart_mid_stream_loses_nothing(
    spare: SpareBroker, worker_on_spare: WorkerProcess
) -> None:
    """stop_app/start_app while 3,000 events flow: the worker reconnects, re-declares and finishes."""
    worker_on_spare.start()
    client = Client(spare.url)
    observer = durable_observer(client, "observer.restart")
    events = [renewal(f"restart-{n}", None, decision_maker=DORA, id=f"restart-evt-{n}") for n in range(3000)]
    client.publish(events)
    wait_until(lambda: client.count(observer) >= 300, "300 notifications before the restart", timeout=60)
    client.close()
    spare.restart_app()
    outputs = collect(spare.url, observer, {e["id"] for e in events})
    result = audit(outputs, {e["id"] for e in events})
    assert (result["lost"], result["unexpected"], result["events_with_two_ids"]) == (0, 0, 0), result
    assert worker_on_spare.wait_for("broker.connection_lost")
    assert len(worker_on_spare.wait_for("worker.consuming", count=2)) >= 2
    assert worker_on_spare.process.poll() is None


def test_a_blocked_broker_is_waited_for_not_failed(
    spare: SpareBroker, worker_on_spare: WorkerProcess
) -> None:
    """A memory alarm blocks publishing longer than the confirm timeout: the worker waits, then finishes."""
    worker_on_spare.start().stop()  # declares the topology
    client = Client(spare.url)
    observer = durable_observer(client, "observer.blocked")
    events = [renewal(f"blocked-{n}", None, decision_maker=DORA, id=f"blocked-evt-{n}") for n in range(200)]
    client.publish(events)
    client.close()
    spare.ctl("set_vm_memory_high_watermark", "0.000001")
    try:
        worker_on_spare.start()
        worker_on_spare.wait_for("broker.blocked")
        time.sleep(3)  # longer than RENEWALS_CONFIRM_TIMEOUT=2
    finally:
        spare.ctl("set_vm_memory_high_watermark", "0.4")
    outputs = collect(spare.url, observer, {e["id"] for e in events})
    result = audit(outputs, {e["id"] for e in events})
    assert (result["lost"], result["unexpected"], result["events_with_two_ids"]) == (0, 0, 0), result
    assert worker_on_spare.wait_for("broker.unblocked")
    events_logged = {r["event"] for r in worker_on_spare.lines()}
    assert not events_logged & {"broker.connection_lost", "message.retry_scheduled", "message.dead_lettered"}
