"""Publishing with publisher confirms: write a batch in one go, wait for its confirms once, later."""

import time
from collections.abc import Callable, Sequence
from struct import pack
from typing import Any

import amqp
from amqp.basic_message import Message
from amqp.serialization import dumps

from worker.broker.messages import Outgoing
from worker.logs import Logger


class PublishFailed(Exception):
    """The broker did not confirm a publish (nack, return or timeout): transient."""


def _nothing() -> None:
    pass


_PUBLISH = pack(">HHH", 60, 40, 0)  # basic.publish, ticket 0
_HEADER = pack(">HH", 60, 0)  # basic class, weight 0
_PROPERTY_FORMATS = tuple((name, kind.encode()) for name, kind in Message.PROPERTIES)


class ConfirmingPublisher:
    """Owns its own connection: confirms are read here, never inside a consumer callback.

    `send` writes every message of a batch to the socket in one system call and returns the
    last publish tag; `wait_for(tag)` returns once every publish up to that tag is confirmed,
    so the worker can commit the next batch while the broker confirms this one.
    """

    def __init__(self, connection: amqp.Connection, *, confirm_timeout: float, log: Logger) -> None:
        self._connection = connection
        self._channel = connection.channel()
        self._channel.confirm_select()
        self._channel.events["basic_ack"].add(self._on_ack)
        self._channel.events["basic_nack"].add(self._on_nack)
        self._channel.events["basic_return"].add(self._on_return)
        self._timeout = confirm_timeout
        self._log = log
        self._next_tag = 1
        self._low = 1  # every publish tag below this is confirmed
        self._unconfirmed: set[int] = set()
        self._refused: list[str] = []
        self.blocked = False
        connection.on_blocked = self.on_blocked
        connection.on_unblocked = self.on_unblocked

    def on_blocked(self, reason: str) -> None:
        self.blocked = True
        self._log.warning("broker.blocked", reason=reason)

    def on_unblocked(self) -> None:
        self.blocked = False
        self._log.info("broker.unblocked")

    def publish(self, messages: Sequence[Outgoing], *, while_waiting: Callable[[], None] = _nothing) -> None:
        """Send and wait: return once the broker has confirmed every message."""
        self.wait_for(self.send(messages), while_waiting=while_waiting)

    def send(self, messages: Sequence[Outgoing]) -> int:
        """Publish with `mandatory`, without waiting; the tag to `wait_for`."""
        if messages:
            frames = bytearray()
            channel, frame_max = self._channel.channel_id, self._connection.frame_max
            for message in messages:
                frames += _frames(channel, frame_max, message)
            self._connection.transport.write(bytes(frames))
            self._connection.bytes_sent += 1
        first = self._next_tag
        self._next_tag += len(messages)
        self._unconfirmed.update(range(first, self._next_tag))
        return self._next_tag - 1

    def wait_for(self, tag: int, *, while_waiting: Callable[[], None] = _nothing) -> None:
        """Return once every publish up to `tag` is confirmed; PublishFailed on a nack, a
        return, or no confirm within the timeout (not counted while the broker blocks us)."""
        deadline = time.monotonic() + self._timeout
        while self._low <= tag and not self._refused:
            if self.blocked:  # a blocked broker confirms nothing; waiting is not failing
                deadline = time.monotonic() + self._timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishFailed(f"publishes up to {tag} not confirmed within {self._timeout:g}s")
            try:
                self._connection.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                while_waiting()
        if self._refused:
            refused, self._refused = self._refused, []
            raise PublishFailed("; ".join(refused[:5]))

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            for tag in range(self._low, delivery_tag + 1):
                self._unconfirmed.discard(tag)
        else:
            self._unconfirmed.discard(delivery_tag)
        while self._low < self._next_tag and self._low not in self._unconfirmed:
            self._low += 1

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._refused.append(f"broker nacked publish {delivery_tag}")
        self._on_ack(delivery_tag, multiple)

    def _on_return(self, error: Exception, exchange: str, routing_key: str, message: Any) -> None:
        """py-amqp's basic_return event: a `mandatory` publish no queue was bound for."""
        self._refused.append(f"unroutable: no queue is bound for {routing_key!r} on {exchange!r} ({error})")


def _frames(channel: int, frame_max: int, message: Outgoing) -> bytes:
    """basic.publish (mandatory), its content header and body frames, as AMQP 0-9-1 lays them out."""
    method = b"".join((_PUBLISH, _short(message.exchange), _short(message.routing_key), b"\x01"))
    body = message.body
    header = b"".join((_HEADER, pack(">Q", len(body)), encode_properties(message.properties)))
    parts = [_frame(1, channel, method), _frame(2, channel, header)]
    chunk = frame_max - 8
    parts += [_frame(3, channel, body[start : start + chunk]) for start in range(0, len(body), chunk)]
    return b"".join(parts)


def encode_properties(properties: dict[str, Any]) -> bytes:
    """Property flags and list of the basic class (py-amqp's names; `application_headers`).
    Strings, octets and the timestamp are packed here; only a header table goes through
    py-amqp's table encoder."""
    flags = 0
    parts: list[bytes] = []
    for position, (name, kind) in enumerate(_PROPERTY_FORMATS):
        value = properties.get(name)
        if value is None:
            continue
        flags |= 1 << (15 - position)
        if kind == b"s":
            parts.append(_short(value))
        elif kind == b"o":
            parts.append(bytes((value,)))
        elif kind == b"L":
            parts.append(pack(">Q", value))
        else:
            encoded: bytes = dumps(kind, [value])
            parts.append(encoded)
    return pack(">H", flags) + b"".join(parts)


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return b"".join((pack(">BHI", kind, channel, len(payload)), payload, b"\xce"))


def _short(text: str) -> bytes:
    encoded = text.encode("utf-8", "surrogatepass")  # as py-amqp decoded it: a copy keeps it exactly
    return bytes((len(encoded),)) + encoded
