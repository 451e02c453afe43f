"""The benchmark's side of the broker: a vhost of its own, py-amqp connections, pre-filling
queues with confirms, and watching queue depths."""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import amqp  # type: ignore[import-untyped]  # py-amqp ships no type hints

from bench.mix import CONTENT_TYPE, Message
from support.amqp import Confirms, connect
from support.polling import wait_until

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def event_message(message: Message) -> amqp.Message:
    return amqp.Message(message.body, content_type=CONTENT_TYPE, delivery_mode=2, message_id=message.event_id)


@dataclass(frozen=True, slots=True)
class Prefilled:
    seconds: float
    events: int
    notifications: int  # how many of the events must each yield one notification


def prefill(url: str, exchange: str, messages: Iterable[Message], window: int = 2000) -> Prefilled:
    """Publish persistently with confirms, keeping at most `window` unconfirmed."""
    started = time.perf_counter()
    events = notifications = 0
    connection = connect(url)
    try:
        confirms = Confirms(connection.channel())
        for message in messages:
            confirms.publish(exchange, message.routing_key, event_message(message))
            events += 1
            notifications += message.notifies
            if confirms.outstanding >= window:
                confirms.wait(connection, at_most=window // 2)
        confirms.wait(connection)
    finally:
        connection.close()
    return Prefilled(time.perf_counter() - started, events, notifications)


class Watcher:
    """A connection of its own for looking at queues: depths, consumers, purges."""

    def __init__(self, url: str) -> None:
        self.connection = connect(url)
        self.channel = self.connection.channel()

    def depth(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) of `queue`."""
        _, messages, consumers = self.channel.queue_declare(queue, passive=True)
        return messages, consumers

    def purge(self, queue: str) -> int:
        return int(self.channel.queue_purge(queue) or 0)

    def quorum_queue(
        self, name: str, arguments: dict[str, object], exchange: str = "", key: str = "#"
    ) -> None:
        self.channel.queue_declare(name, durable=True, auto_delete=False, arguments=arguments)
        if exchange:
            self.channel.queue_bind(name, exchange, key)

    def topic_exchange(self, name: str) -> None:
        self.channel.exchange_declare(name, "topic", durable=True, auto_delete=False)

    def wait_until(
        self, done: Callable[[], bool], *, timeout: float, every: float = 0.01, what: str = ""
    ) -> float:
        """Poll `done` until true; return the perf_counter time it became so."""
        wait_until(done, what, timeout, every)
        return time.perf_counter()

    def server_version(self) -> str:
        version = self.connection.server_properties.get("version", "?")
        return version.decode() if isinstance(version, bytes) else str(version)

    def close(self) -> None:
        self.connection.close()
