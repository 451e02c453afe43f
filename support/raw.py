"""Messages no well-behaved client would send: the content header's property bytes are written
as given (a string that is not UTF-8, a timestamp of 2^63, a header table near the frame limit),
published over a bare py-amqp connection with publisher confirms, or laid out as the frames a
broker delivers them in (for the worker's frame reader, without a broker).

pika and py-amqp encode properties from Python values and refuse (or cannot express) such
input; here the basic.publish, basic.deliver, content-header and body frames are laid out by
hand, as AMQP 0-9-1 defines them (worker/broker/publisher.py does the same for the worker's own
publishes).
"""

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from struct import pack
from types import TracebackType
from typing import Any

from amqp.serialization import dumps

from support.amqp import connect, drain

# The basic class's properties in flag order, with their AMQP types (py-amqp's names).
_PROPERTIES = (
    ("content_type", "s"), ("content_encoding", "s"), ("application_headers", "F"),
    ("delivery_mode", "o"), ("priority", "o"), ("correlation_id", "s"), ("reply_to", "s"),
    ("expiration", "s"), ("message_id", "s"), ("timestamp", "T"), ("type", "s"), ("user_id", "s"),
    ("app_id", "s"), ("cluster_id", "s"),
)  # fmt: skip
_NAMES = frozenset(name for name, _ in _PROPERTIES)
FRAME_END = b"\xce"


@dataclass(frozen=True, slots=True)
class Field:
    """A header value written exactly as given: its AMQP type letter and its encoded bytes
    (`Field(b"T", pack(">Q", 2**63))` is a timestamp no datetime can hold)."""

    kind: bytes
    payload: bytes


def _short(encoded: bytes) -> bytes:
    return bytes((len(encoded),)) + encoded


def table(entries: Mapping[str | bytes, Any]) -> bytes:
    """An AMQP field table, length first: `Field` values as given (under a name that may be
    `bytes`, UTF-8 or not), the others as py-amqp encodes them."""
    plain = {name: value for name, value in entries.items() if not isinstance(value, Field)}
    content = bytes(dumps("F", [plain]))[4:]
    for name, value in entries.items():
        if isinstance(value, Field):
            content += _short(name if isinstance(name, bytes) else name.encode()) + value.kind + value.payload
    return pack(">I", len(content)) + content


def nested(depth: int, leaf: Field, *, arrays: Sequence[bool] = ()) -> Field:
    """`leaf` inside `depth` tables (an array at each level where `arrays` says so, counted from
    the inside), each table holding it under the name "n". Built without recursion: py-amqp's
    own encoder cannot write one past about 900 levels."""
    value = leaf.kind + leaf.payload
    for level in range(depth):
        if level < len(arrays) and arrays[level]:
            content = value
            kind = b"A"
        else:
            content = _short(b"n") + value
            kind = b"F"
        value = kind + pack(">I", len(content)) + content
    return Field(value[:1], value[1:])


def properties(**values: Any) -> bytes:
    """The property flags and list of a content header. Strings may be `bytes` (written as
    they are, UTF-8 or not); `application_headers` a mapping or the bytes of `table`; a
    `timestamp` any integer an unsigned 64 bits hold."""
    unknown = set(values) - _NAMES
    if unknown:
        raise ValueError(f"not AMQP basic properties: {sorted(unknown)}")
    flags, encoded = 0, b""
    for position, (name, kind) in enumerate(_PROPERTIES):
        value = values.get(name)
        if value is None:
            continue
        flags |= 1 << (15 - position)
        if kind == "s":
            encoded += _short(value if isinstance(value, bytes) else str(value).encode())
        elif kind == "o":
            encoded += pack(">B", value)
        elif kind == "T":
            encoded += pack(">Q", value)
        else:
            encoded += value if isinstance(value, bytes) else table(value)
    return pack(">H", flags) + encoded


# Properties py-amqp cannot decode, each as `properties` takes it: the worker dead-letters such a
# message as invalid_properties. The frame reader's unit test reads them from frames, the
# hostile-input end-to-end test publishes them through a broker.
UNDECODABLE_PROPERTIES: dict[str, dict[str, Any]] = {
    "message-id": {"message_id": b"\xff\xfe"},
    "type": {"type": b"Renewal\xc3\x28"},
    "timestamp-header": {"application_headers": table({"sent": Field(b"T", pack(">Q", 2**63))})},
    "header-name": {"application_headers": table({b"\xffname": Field(b"s", pack(">h", 1))})},
    "nested-name": {
        "application_headers": table({"outer": Field(b"F", table({b"in\xfe": Field(b"t", b"\x01")}))})
    },
}


class RawPublisher:
    """`with RawPublisher(url) as raw: raw.publish(exchange, key, body, properties(...))`:
    each publish is `mandatory` and returns once the broker confirmed it."""

    def __init__(self, amqp_url: str, *, timeout: float = 10.0) -> None:
        self._connection = connect(amqp_url)
        self._channel = self._connection.channel()
        self._channel.confirm_select()
        self._channel.events["basic_ack"].add(self._on_ack)
        self._channel.events["basic_nack"].add(self._on_nack)
        self._channel.events["basic_return"].add(self._on_return)
        self._timeout = timeout
        self._sent = 0
        self._confirmed = 0
        self._refused: list[str] = []

    def __enter__(self) -> "RawPublisher":
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    @property
    def frame_max(self) -> int:
        return int(self._connection.frame_max)

    def publish(self, exchange: str, routing_key: str, body: bytes, property_bytes: bytes) -> None:
        """Write the three kinds of frames; wait for the confirm (AssertionError if refused)."""
        frames = publish_frames(
            self._channel.channel_id, self.frame_max, exchange, routing_key, body, property_bytes
        )
        self._connection.transport.write(frames)
        self._sent += 1
        deadline = time.monotonic() + self._timeout
        while self._confirmed < self._sent:
            if not drain(self._connection, deadline - time.monotonic()) and time.monotonic() >= deadline:
                raise TimeoutError(f"publish {self._sent} not confirmed within {self._timeout:g}s")
        if self._refused:
            refused, self._refused = self._refused, []
            raise AssertionError(f"the broker refused the publish: {'; '.join(refused)}")

    def close(self) -> None:
        try:
            self._connection.close()
        except Exception:  # already closed by the broker: nothing left to close
            self._connection.collect()

    def _on_ack(self, tag: int, multiple: bool) -> None:
        self._confirmed = max(self._confirmed, tag)

    def _on_nack(self, tag: int, multiple: bool) -> None:
        self._refused.append(f"nacked {tag}")
        self._on_ack(tag, multiple)

    def _on_return(self, error: Exception, exchange: str, routing_key: str, message: Any) -> None:
        self._refused.append(f"returned from {exchange!r} / {routing_key!r}: {error}")


def publish_frames(
    channel: int, frame_max: int, exchange: str, routing_key: str, body: bytes, property_bytes: bytes
) -> bytes:
    """basic.publish (`mandatory`), its content header and body frames, ready for the socket."""
    method = pack(">HHH", 60, 40, 0) + _short(exchange.encode()) + _short(routing_key.encode()) + b"\x01"
    return _content(channel, frame_max, method, body, property_bytes)


def deliver_frames(
    body: bytes, property_bytes: bytes, *, channel: int = 1, frame_max: int = 131072, **method: Any
) -> bytes:
    """basic.deliver (`method` as `deliver_method` takes it), its content header and body
    frames, as a broker sends them to a consumer."""
    return _content(channel, frame_max, deliver_method(**method), body, property_bytes)


def deliver_method(
    *,
    delivery_tag: int = 1,
    redelivered: bool = False,
    exchange: str = "renewals.events",
    routing_key: str = "renewal.approaching",
    consumer_tag: str = "ctag-1",
) -> bytes:
    """The payload of a basic.deliver method frame."""
    return (
        pack(">HH", 60, 60)
        + _short(consumer_tag.encode())
        + pack(">Q?", delivery_tag, redelivered)
        + _short(exchange.encode())
        + _short(routing_key.encode())
    )


def content_header(body_size: int, property_bytes: bytes) -> bytes:
    """The payload of a content-header frame of the basic class."""
    return pack(">HHQ", 60, 0, body_size) + property_bytes


def frame(kind: int, channel: int, payload: bytes) -> bytes:
    """One frame: type, channel, size, payload, frame end."""
    return pack(">BHI", kind, channel, len(payload)) + payload + FRAME_END


def _content(channel: int, frame_max: int, method: bytes, body: bytes, property_bytes: bytes) -> bytes:
    """A content method's frames: the method, the content header, the body in frames of at most
    `frame_max` bytes."""
    frames = [frame(1, channel, method), frame(2, channel, content_header(len(body), property_bytes))]
    room = frame_max - 8
    frames += [frame(3, channel, body[start : start + room]) for start in range(0, len(body), room)]
    return b"".join(frames)
