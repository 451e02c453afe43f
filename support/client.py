"""Billing and the notification service, played by pika: an independent client of the broker."""

import json
import threading
import time
from collections.abc import Iterable
from typing import Any

import pika  # pika ships no type hints: its objects are Any here

from events import input_routing_key
from worker.settings import Settings

NAMES = Settings()
"""The default names of exchanges and queues, as the worker reads them from its settings."""


class Client:
    """Publishes like billing (confirms, `mandatory`) and reads like a notification service."""

    def __init__(self, amqp_url: str, settings: Settings = NAMES) -> None:
        self.settings = settings
        self.connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        self.channel = self.connection.channel()
        self.channel.confirm_delivery()

    def observe(self, exchange: str | None = None, binding: str = "#") -> str:
        """A queue receiving a copy of everything published on `exchange` (the notifications)."""
        queue: str = self.channel.queue_declare("", exclusive=True).method.queue
        self.channel.queue_bind(queue, exchange or self.settings.notifications_exchange, binding)
        return queue

    def publish(
        self,
        messages: Iterable[dict[str, Any] | bytes],
        *,
        content_type: str | None = "application/cloudevents+json",
        routing_key: str | None = None,
        **properties: Any,
    ) -> None:
        """Persistent and confirmed; a dict goes under its type's routing key, bytes as given."""
        for message in messages:
            if isinstance(message, bytes):
                body, key = message, routing_key or input_routing_key("RenewalApproaching")
            else:
                body = json.dumps(message).encode()
                key = routing_key or input_routing_key(str(message.get("type"))) or "renewal.approaching"
            self.channel.basic_publish(
                self.settings.events_exchange,
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
        taken: list[tuple[Any, Any, bytes]] = []
        while True:
            method, properties, body = self.channel.basic_get(queue, auto_ack=True)
            if method is None:
                return taken
            taken.append((method, properties, body))

    def count(self, queue: str) -> int:
        return int(self.channel.queue_declare(queue, passive=True).method.message_count)

    def quiet(self, queue: str, seconds: float = 0.5) -> bool:
        """True if `queue` is still empty after `seconds`."""
        time.sleep(seconds)
        return self.count(queue) == 0

    def close(self) -> None:
        if self.connection.is_open:
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
