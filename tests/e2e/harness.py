"""Driving the real worker process through the real broker, with pika as the independent client."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pika

EVENTS = "renewals.events"
NOTIFICATIONS = "renewals.notifications"
DLQ = "renewals.worker.dlq"
ROUTING = {"RenewalApproaching": "renewal.approaching", "OwnerChanged": "owner.changed"}


class WorkerProcess:
    """`renewals run` as a subprocess, its JSON log lines in a file."""

    def __init__(self, amqp_url: str, folder: Path, **env: str) -> None:
        self.log_path = folder / f"worker-{time.monotonic_ns()}.log"
        self.env = {
            **os.environ,
            "RENEWALS_AMQP_URL": amqp_url,
            "RENEWALS_STORE_URL": f"sqlite:///{folder / 'renewals.db'}",
            "RENEWALS_LOG_FORMAT": "json",
            "RENEWALS_RETRY_DELAYS": "[0.2, 0.4, 0.8]",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> "WorkerProcess":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker", "run"], env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        if wait:
            self.wait_for("worker.consuming")
        return self

    def lines(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log_path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                records.append({"event": "raw", "text": line})
        return records

    def wait_for(self, event: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in self.lines() if r.get("event") == event]
            if len(found) >= count:
                return found
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"worker exited {self.process.returncode}:\n{self.log_path.read_text()}")
            time.sleep(0.05)
        raise AssertionError(f"no {count}x {event} within {timeout}s:\n{self.log_path.read_text()[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)


class Client:
    """Billing and the notification service, played by pika on the test's vhost."""

    def __init__(self, amqp_url: str) -> None:
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def observe(self, exchange: str = NOTIFICATIONS, binding: str = "#") -> str:
        """A queue receiving a copy of everything the worker publishes on `exchange`."""
        queue = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(queue, exchange, binding)
        return queue

    def publish(
        self,
        messages: Iterable[dict[str, Any] | bytes],
        *,
        content_type: str | None = "application/cloudevents+json",
        routing_key: str | None = None,
        **properties: Any,
    ) -> None:
        for message in messages:
            if isinstance(message, bytes):
                body, key = message, routing_key or "renewal.approaching"
            else:
                body, key = (
                    json.dumps(message).encode(),
                    routing_key or ROUTING.get(message.get("type", ""), "renewal.approaching"),
                )
            self.channel.basic_publish(
                EVENTS,
                key,
                body,
                pika.BasicProperties(content_type=content_type, delivery_mode=2, **properties),
                mandatory=True,
            )

    def take(self, queue: str, count: int, timeout: float = 20.0) -> list[tuple[Any, Any, bytes]]:
        """Exactly the next `count` messages of `queue` (acknowledged), or fail."""
        taken: list[tuple[Any, Any, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(taken) < count and time.monotonic() < deadline:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                time.sleep(0.02)
            else:
                taken.append((method, properties, body))
        assert len(taken) == count, f"expected {count} messages on {queue}, got {len(taken)}"
        return taken

    def drain(self, queue: str) -> list[tuple[Any, Any, bytes]]:
        """Everything `queue` holds right now (acknowledged)."""
        taken = []
        while True:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.append((method, properties, body))

    def count(self, queue: str) -> int:
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def quiet(self, queue: str, seconds: float = 0.5) -> bool:
        """True if nothing more arrives on `queue` for `seconds`."""
        time.sleep(seconds)
        return self.channel.queue_declare(queue, passive=True).method.message_count == 0

    def close(self) -> None:
        self.connection.close()


class PacedPublisher(threading.Thread):
    """Billing publishing `messages` steadily from its own connection, in the background."""

    def __init__(self, amqp_url: str, messages: list[dict[str, Any]], per_second: float) -> None:
        super().__init__(daemon=True)
        self.amqp_url, self.messages, self.per_second = amqp_url, messages, per_second
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            client = Client(self.amqp_url)
            started = time.monotonic()
            for number, message in enumerate(self.messages):
                client.publish([message])
                ahead = started + number / self.per_second - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            client.close()
        except BaseException as exc:  # reported by the test through .error
            self.error = exc


def audit(outputs: list[tuple[Any, Any, bytes]], expected_event_ids: set[str]) -> dict[str, Any]:
    """Lost, duplicated and unexpected counts over a stream's notifications."""
    ids_by_event: dict[str, set[str]] = {}
    copies = 0
    for _method, properties, body in outputs:
        event_id = json.loads(body)["data"]["causation_id"]
        if event_id in ids_by_event:
            copies += 1
        ids_by_event.setdefault(event_id, set()).add(properties.message_id)
    return {
        "lost": len(expected_event_ids - set(ids_by_event)),
        "unexpected": len(set(ids_by_event) - expected_event_ids),
        "duplicate_copies": copies,
        "events_with_two_ids": sum(1 for ids in ids_by_event.values() if len(ids) > 1),
    }
