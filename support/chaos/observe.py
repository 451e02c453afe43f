"""What came out of a run, read with pika (an independent client): the notifications, copied to
a durable quorum queue bound to the output exchange before anything is published, and the
dead letters; plus how many messages each queue still holds."""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pika  # pika ships no type hints: its objects are Any here

from support.client import NAMES

OBSERVER = "chaos.observer"


@dataclass(frozen=True)
class Received:
    """One message as it arrived: routing key, the properties that matter, headers and body."""

    routing_key: str
    message_id: str | None
    correlation_id: str | None
    headers: dict[str, Any]
    body: bytes
    persistent: bool = True


def bind_observer(url: str) -> None:
    """A durable quorum queue receiving a copy of every notification (survives node stops)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    try:
        channel = connection.channel()
        channel.queue_declare(OBSERVER, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(OBSERVER, NAMES.notifications_exchange, "#")
    finally:
        connection.close()


def take_all(url: str, queue: str, idle: float = 2.0) -> list[Received]:
    """Everything `queue` holds, until nothing came for `idle` seconds (the run is over)."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    taken = []
    try:
        channel = connection.channel()
        channel.basic_qos(prefetch_count=2000)
        for method, properties, body in channel.consume(queue, inactivity_timeout=idle):
            if method is None:
                break
            taken.append(
                Received(
                    method.routing_key,
                    properties.message_id,
                    properties.correlation_id,
                    dict(properties.headers or {}),
                    bytes(body),
                    properties.delivery_mode == 2,
                )
            )
            if len(taken) % 500 == 0:
                channel.basic_ack(method.delivery_tag, multiple=True)
        channel.cancel()
        channel.basic_ack(0, multiple=True)
    finally:
        connection.close()
    return taken


METRICS_LAG = 6.0
"""Seconds a work queue must read empty to be empty: `list_queues` counts a quorum queue's messages
as of its leader's last metrics tick (every 5 s), and a new leader (its old one's node stopped)
reports 0 until its first tick; seen on 3.10 with 500 messages in the queue."""


def settled(
    depths: Callable[[], dict[str, int]],
    work_queues: list[str],
    hold: float = METRICS_LAG,
    every: float = 0.5,
) -> Callable[[], bool]:
    """A condition: every work queue empty (ready and unacknowledged) at each reading, `every`
    seconds apart, for `hold` seconds; False while the broker does not answer."""

    def condition() -> bool:
        for reading in range(round(hold / every) + 1):
            if reading:
                time.sleep(every)
            try:
                held = depths()
            except Exception:  # a node restarting: not settled yet
                return False
            if any(held.get(queue, 0) for queue in work_queues):
                return False
        return True

    return condition


def recorded(store_url: str) -> list[Received]:
    """The dead letters the workers recorded in their store (the dead-letter queue is only
    their transport), as if received from the queue."""
    from support.records import stored_letters

    try:
        letters = stored_letters(store_url)
    except Exception:  # no worker has created the tables yet
        return []
    return [
        Received(
            NAMES.dead_letter_queue,
            letter.properties.get("message_id"),
            letter.properties.get("correlation_id"),
            dict(letter.headers),
            letter.body,
            letter.properties.get("delivery_mode") == 2,
        )
        for letter in letters
    ]
