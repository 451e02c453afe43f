"""The benchmark's side of the broker: a vhost of its own, py-amqp connections, pre-filling
queues with confirms, and watching queue depths."""

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import amqp  # type: ignore[import-untyped]  # py-amqp ships no type hints
from amqp import spec

from bench.mix import CONTENT_TYPE, Message

DEFAULT_BROKER = "amqp://guest:guest@127.0.0.1:5672/"


def create_vhost(base_url: str, prefix: str = "renewals-bench") -> tuple[str, str]:
    """A fresh vhost made with rabbitmqctl on this host, and the URL that uses it."""
    if shutil.which("rabbitmqctl") is None:
        raise SystemExit("rabbitmqctl is not on PATH: give --amqp-url of a vhost the benchmark may fill")
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    parts = urlsplit(base_url)
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    user = parts.username or "guest"
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, user, ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    return name, parts._replace(path="/" + name).geturl()


def delete_vhost(name: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True)


def connect(url: str) -> amqp.Connection:
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    connection = amqp.Connection(
        host=f"{parts.hostname or 'localhost'}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=vhost,
        heartbeat=0,
        connect_timeout=5,
    )
    connection.connect()
    return connection


def drain(connection: amqp.Connection, timeout: float) -> bool:
    """Handle what arrives within `timeout` seconds; False if nothing did."""
    try:
        connection.drain_events(timeout=max(timeout, 0.0001))
    except TimeoutError:
        return False
    return True


class Confirms:
    """Publisher confirms on one channel, counted without waiting per message."""

    def __init__(self, channel: amqp.Channel) -> None:
        channel.confirm_select()
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        self.channel = channel
        self.sent = 0
        self._unconfirmed: set[int] = set()

    def publish(self, exchange: str, routing_key: str, message: amqp.Message) -> None:
        self.channel.send_method(
            spec.Basic.Publish, "Bssbb", (0, exchange, routing_key, True, False), message
        )
        self.sent += 1
        self._unconfirmed.add(self.sent)

    @property
    def outstanding(self) -> int:
        return len(self._unconfirmed)

    def wait(self, connection: amqp.Connection, *, at_most: int = 0, timeout: float = 30.0) -> None:
        """Drain until no more than `at_most` publishes are unconfirmed."""
        deadline = time.monotonic() + timeout
        while len(self._unconfirmed) > at_most:
            if not drain(connection, deadline - time.monotonic()) and time.monotonic() >= deadline:
                raise TimeoutError(f"{len(self._unconfirmed)} publishes unconfirmed after {timeout}s")

    def _on_ack(self, tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {t for t in self._unconfirmed if t > tag}
        else:
            self._unconfirmed.discard(tag)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        raise RuntimeError(f"the broker nacked publish {tag} (multiple={multiple})")


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
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
            time.sleep(every)
        return time.perf_counter()

    def server_version(self) -> str:
        version = self.connection.server_properties.get("version", "?")
        return version.decode() if isinstance(version, bytes) else str(version)

    def close(self) -> None:
        self.connection.close()
