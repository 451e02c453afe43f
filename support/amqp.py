"""Bare py-amqp connections and batched publisher confirms, for relays and pre-filling queues."""

import time
from urllib.parse import unquote, urlsplit

import amqp  # py-amqp ships no type hints: its objects are Any here
from amqp import spec


def connect(url: str, name: str | None = None) -> amqp.Connection:
    """A connection to the URL's node; `name` shows as its connection_name in rabbitmqctl."""
    parts = urlsplit(url)
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    connection = amqp.Connection(
        host=f"{parts.hostname or 'localhost'}:{parts.port or 5672}",
        userid=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
        virtual_host=vhost,
        heartbeat=0,
        connect_timeout=5,
        client_properties={"connection_name": name} if name else None,
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
