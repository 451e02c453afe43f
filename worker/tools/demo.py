"""`renewals demo`: the shipped scenario through a real worker on the configured broker.

Everything it declares is named `renewals-demo-<random>.*` and deleted afterwards, and its
store is a temporary SQLite file, so a demo never touches the real worker's queues or state.
"""

import json
import tempfile
import threading
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from worker.app import build_worker
from worker.broker.endpoints import Broker, from_settings
from worker.broker.topology import BrokerVersion, Topology, declare, topology
from worker.broker.wire import Connection, DeliveryReader, read_by_the_reader
from worker.dead_letters.model import LetterFilter
from worker.dead_letters.records import DeadLetterRecords
from worker.messaging import ERROR_REASON
from worker.settings import Settings
from worker.store import StoreUnavailable, open_store
from worker.tools.event_files import publish


@dataclass
class DemoRun:
    events: list[dict[str, Any]]
    notifications: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]


def scenario() -> list[dict[str, Any]]:
    text = resources.files("worker.tools").joinpath("scenarios/demo.ndjson").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run_demo(base: Settings, timeout: float = 20.0) -> DemoRun:
    """The scenario through a worker thread under fresh names; everything the demo declared is
    deleted afterwards, whether it succeeded or not."""
    prefix = f"renewals-demo-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        settings = base.model_copy(
            update={
                "events_exchange": f"{prefix}.events",
                "queue": f"{prefix}.worker",
                "notifications_exchange": f"{prefix}.notifications",
                "unrouted_queue": f"{prefix}.unrouted",
                "dead_letter_queue": f"{prefix}.dlq",
                "retry_delays": (1.0,),
                "store_url": f"sqlite:///{Path(folder) / 'demo.db'}",
                "metrics_port": None,
            }
        )
        broker = from_settings(settings, heartbeat=0)
        reader = DeliveryReader()
        connection, _ = broker.connect(frame_handler=reader.frame_handler)
        plan = topology(settings, BrokerVersion.of(connection))
        stop = threading.Event()
        worker: threading.Thread | None = None
        try:
            declare(connection.channel(), plan)
            listening = connection.channel()
            watch = listening.queue_declare("", exclusive=True)[0]
            listening.queue_bind(watch, settings.notifications_exchange, "#")
            listening.basic_consume(watch, no_ack=True, callback=read_by_the_reader)
            worker = threading.Thread(target=build_worker(settings).run, args=(stop,), daemon=True)
            worker.start()
            events = scenario()
            publish(broker, settings.events_exchange, events)
            expected = [e for e in events if e.get("demoexpect") in ("notification", "no_recipient")]
            notifications, dead = _collect(connection, reader, settings.store_url, len(expected), timeout)
            # Stop listening before the queues go: deleting a queue we consume from would have
            # the broker cancel our consumer (ConsumerCancelled on the next call).
            listening.close()
        finally:
            stop.set()
            if worker is not None:
                worker.join(timeout=10)
            _delete(broker, connection, plan)
    return DemoRun(events, notifications, dead)


def _collect(
    connection: Connection, reader: DeliveryReader, store_url: str, expected: int, timeout: float
) -> tuple[list[Any], list[Any]]:
    """The notifications as they arrive, and the dead letters as the worker records them."""
    notifications: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    settle: float | None = None  # after the expected results, listen a little longer for strays
    while time.monotonic() < min(deadline, settle or deadline):
        if settle is None and len(notifications) + len(dead) >= expected:
            settle = time.monotonic() + 1.0
        with suppress(TimeoutError):
            connection.drain_events(timeout=0.05)
        connection.drain_buffered()
        notifications += [
            {"body": json.loads(delivery.body), "headers": delivery.headers} for delivery in reader.arrived
        ]
        reader.arrived.clear()
        dead = _recorded(store_url)
    return notifications, dead


def _recorded(store_url: str) -> list[dict[str, Any]]:
    """The dead letters the demo's worker has recorded so far."""
    try:
        store = open_store(store_url)
    except StoreUnavailable:
        return []
    try:
        letters = DeadLetterRecords(store).letters(LetterFilter())
        return [{"body": json.loads(letter.body), "headers": letter.headers} for letter in letters]
    except Exception:  # its tables are not there yet
        return []
    finally:
        store.close()


def _delete(broker: Broker, connection: Connection, plan: Topology) -> None:
    """Delete every queue and exchange of the plan, on a fresh connection if ours broke."""
    try:
        _delete_on(connection, plan)
        connection.close()
        return
    except Exception:  # a broken connection or channel: the fresh connection below does the work
        with suppress(Exception):  # it may be half closed already
            connection.collect()
    fresh, _ = broker.connect()
    try:
        _delete_on(fresh, plan)
    finally:
        fresh.close()


def _delete_on(connection: Connection, plan: Topology) -> None:
    channel = connection.channel()
    for queue in plan.queues:
        channel.queue_delete(queue.name)
    for exchange in plan.exchanges:
        channel.exchange_delete(exchange.name)


def report(run: DemoRun) -> list[dict[str, Any]]:
    """One row per reminder in the scenario: what was sent (or why not), and why."""
    sent = {n["body"]["data"]["causation_id"]: n["body"]["data"] for n in run.notifications}
    failed = {d["body"]["id"]: d["headers"] for d in run.dead_letters}
    rows = []
    for event in run.events:
        if event["type"] != "RenewalApproaching":
            rows.append(
                {
                    "event": event["id"],
                    "client": event["data"].get("client_id") or "(partner-wide)",
                    "result": "setting",
                    "note": event["demonote"],
                }
            )
            continue
        data = sent.get(event["id"])
        row: dict[str, Any] = {
            "event": event["id"],
            "client": event["data"]["client_id"],
            "note": event["demonote"],
        }
        if data is not None:
            sent.pop(event["id"])
            row |= {
                "result": data["audience"],
                "resolved_from": data["resolved_from"],
                "to": [r["email"] for r in data["to"]],
                "cc": [r["email"] for r in data["cc"]],
                "fallback": data["fallback"],
            }
        elif event["id"] in failed:
            row["result"] = f"dead letter: {failed.pop(event['id'])[ERROR_REASON]}"
        else:
            row["result"] = "not sent (repeat)"
        rows.append(row)
    return rows
