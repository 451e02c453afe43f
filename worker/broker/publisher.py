"""Publishing with publisher confirms: write a batch in one go, wait for its confirms once, later.

Each message is laid out as frames on its own: one that cannot be encoded (a short string over
255 bytes, a header value AMQP has no type for) is left out and reported back, never written,
and never stops the messages after it. A large body is written from views of its own bytes,
a megabyte at a time: publishing it costs no copy of its size.
"""

import time
from collections.abc import Callable, Sequence
from struct import pack
from typing import Any

import amqp

from worker.broker.amqp_private import Message, dumps
from worker.logs import Logger
from worker.messaging import Outgoing, PublishFailed, Sent, Unencodable, short_string


def _nothing() -> None:
    pass


_PUBLISH = pack(">HHH", 60, 40, 0)  # basic.publish, ticket 0
_HEADER = pack(">HH", 60, 0)  # basic class, weight 0
_PROPERTY_FORMATS = tuple((name, kind.encode()) for name, kind in Message.PROPERTIES)
_WRITE_CHUNK = 1024 * 1024  # bytes joined per socket write once a batch is larger than this


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
        """Send and wait: return once the broker has confirmed every message. Unencodable if
        one of them cannot be encoded; then nothing is sent."""
        laid_out = [self._frames(message) for message in messages]
        self.wait_for(self._write(laid_out), while_waiting=while_waiting)

    def send(self, messages: Sequence[Outgoing]) -> Sent:
        """Publish with `mandatory`, without waiting: the tag to `wait_for`, and the messages
        that could not be encoded (those are not sent and take no tag)."""
        laid_out: list[list[bytes | memoryview]] = []
        unencodable: dict[int, str] = {}
        for index, message in enumerate(messages):
            try:
                laid_out.append(self._frames(message))
            except Unencodable as exc:
                unencodable[index] = str(exc)
        return Sent(self._write(laid_out), unencodable)

    def _frames(self, message: Outgoing) -> list[bytes | memoryview]:
        return frames(self._channel.channel_id, self._connection.frame_max, message)

    def _write(self, messages: list[list[bytes | memoryview]]) -> int:
        """Write the messages' frames, small batches in one system call, and number them."""
        if messages:
            write = self._connection.transport.write
            pending: list[bytes | memoryview] = []
            size = 0
            for parts in messages:
                for part in parts:
                    pending.append(part)
                    size += len(part)
                    if size >= _WRITE_CHUNK:
                        write(b"".join(pending))
                        pending, size = [], 0
            if pending:
                write(b"".join(pending))
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

    def keep_alive(self) -> None:
        """Read the confirms and heartbeats that arrived between batches, and send ours (a
        connection of `worker.broker.wire`; see `Connection.keep_alive`)."""
        self._connection.keep_alive()

    def close(self) -> None:
        """Drop the connection without a closing handshake (the broker may be gone)."""
        self._connection.collect()

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


def frames(channel: int, frame_max: int, message: Outgoing) -> list[bytes | memoryview]:
    """basic.publish (mandatory), its content header and body frames, as AMQP 0-9-1 lays them
    out; the body's frames are views of the body, not copies. Unencodable if a value does not fit."""
    method = b"".join((_PUBLISH, short_string(message.exchange, "exchange"),
                       short_string(message.routing_key, "routing key"), b"\x01"))  # fmt: skip
    body = memoryview(message.body)
    header = b"".join((_HEADER, pack(">Q", len(body)), encode_properties(message.properties)))
    if len(header) > frame_max - 8:
        raise Unencodable(f"properties of {len(header)} bytes do not fit in a frame of {frame_max}")
    parts: list[bytes | memoryview] = [_frame(1, channel, method), _frame(2, channel, header)]
    chunk = frame_max - 8
    for start in range(0, len(body), chunk):
        piece = body[start : start + chunk]
        parts += (pack(">BHI", 3, channel, len(piece)), piece, b"\xce")
    return parts


def encode_properties(properties: dict[str, Any]) -> bytes:
    """Property flags and list of the basic class (py-amqp's names; `application_headers`).
    Strings, octets and the timestamp are packed here; only a header table goes through
    py-amqp's table encoder. Unencodable if a value does not fit its AMQP type."""
    flags = 0
    parts: list[bytes] = []
    for position, (name, kind) in enumerate(_PROPERTY_FORMATS):
        value = properties.get(name)
        if value is None:
            continue
        flags |= 1 << (15 - position)
        try:
            if kind == b"s":
                parts.append(short_string(value, name))
            elif kind == b"o":
                parts.append(bytes((value,)))
            elif kind == b"L":
                parts.append(pack(">Q", value))
            else:
                encoded: bytes = dumps(kind, [value])
                parts.append(encoded)
        except Unencodable:
            raise
        except Exception as exc:  # struct.error, OverflowError, py-amqp's FrameSyntaxError...
            raise Unencodable(f"{name}: {type(exc).__name__}: {exc}"[:300]) from None
    return pack(">H", flags) + b"".join(parts)


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return b"".join((pack(">BHI", kind, channel, len(payload)), payload, b"\xce"))


def encoded_size(name: str, value: Any) -> int | None:
    """The bytes header `name` takes with `value` in an AMQP field table; None if it cannot be
    encoded (`worker.messaging.EncodedSize`, which bounds the headers a copy keeps)."""
    try:
        return len(dumps("F", [{name: value}]))
    except Exception:  # not encodable as an AMQP field value
        return None
