"""AMQP 0-9-1 publish frames built by hand with py-amqp's serialization, so a test or the fault
runner can send what a well-behaved client library refuses to: a property that is not UTF-8
(`message_id=b"\\xff"`), a header table with a timestamp out of range (`raw_headers`).

The layout is the one worker/broker/publisher.py writes (basic.publish with `mandatory`, a
content header, body frames cut to `frame_max`), written here again on purpose: a test client
must not share the code it tests.
"""

from collections.abc import Mapping
from struct import pack
from typing import Any

from amqp.serialization import dumps

PROPERTY_TYPES = (
    ("content_type", "s"),
    ("content_encoding", "s"),
    ("application_headers", "F"),
    ("delivery_mode", "o"),
    ("priority", "o"),
    ("correlation_id", "s"),
    ("reply_to", "s"),
    ("expiration", "s"),
    ("message_id", "s"),
    ("timestamp", "L"),
    ("type", "s"),
    ("user_id", "s"),
    ("app_id", "s"),
    ("cluster_id", "s"),
)
"""The basic class's properties in wire order, with py-amqp's type codes (py-amqp's names)."""


def raw_timestamp_header(name: str, seconds: int) -> bytes:
    """One header table entry of type `T` (a timestamp) holding any 64-bit value, e.g. 2**63."""
    encoded = name.encode()
    return bytes((len(encoded),)) + encoded + b"T" + pack(">Q", seconds)


def encode_properties(properties: Mapping[str, Any], raw_headers: bytes | None = None) -> bytes:
    """Property flags and values. A `str` or `bytes` value goes as it is (bytes unchecked, so
    they need not be UTF-8); `raw_headers`, if given, is the header table's content, verbatim."""
    flags = 0
    values = []
    for position, (name, kind) in enumerate(PROPERTY_TYPES):
        value = properties.get(name)
        if name == "application_headers" and raw_headers is not None:
            flags |= 1 << (15 - position)
            values.append(pack(">I", len(raw_headers)) + raw_headers)
        elif value is not None:
            flags |= 1 << (15 - position)
            values.append(dumps(kind, [value]))
    return pack(">H", flags) + b"".join(values)


def publish_frames(
    channel: int,
    frame_max: int,
    exchange: str,
    routing_key: str,
    body: bytes,
    encoded_properties: bytes,
) -> bytes:
    """basic.publish (mandatory), its content header and body frames, ready for the socket."""
    method = pack(">HHH", 60, 40, 0) + _short(exchange) + _short(routing_key) + b"\x01"
    header = pack(">HHQ", 60, 0, len(body)) + encoded_properties
    frames = [_frame(1, channel, method), _frame(2, channel, header)]
    room = frame_max - 8
    frames += [_frame(3, channel, body[start : start + room]) for start in range(0, len(body), room)]
    return b"".join(frames)


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def _short(text: str) -> bytes:
    encoded = text.encode()
    return bytes((len(encoded),)) + encoded
