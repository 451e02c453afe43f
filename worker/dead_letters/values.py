"""AMQP field values as anyone may have sent them, read totally: each reader takes any value
(any type, any size, any nesting) and gives a sane value or None, never an exception.

Client libraries decode AMQP values differently (a timestamp out of range as a plain int,
text as bytes), and whoever can publish to the worker's queue chooses the headers.
"""

import base64
import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from events import ACCEPTED_CONTENT_TYPES
from events.parsing import MAX_BODY_BYTES
from worker.boundary import MAX_DEPTH
from worker.printable import as_text

# The widest integers AMQP carries (a signed long-long; a timestamp is unsigned): a count
# beyond them is not a count, and an integer beyond them is shown as text, not as a number.
_MAX_COUNT = 2**63 - 1
_INTEGERS = range(-(2**63), 2**64)
_MAX_NESTING = MAX_DEPTH  # deeper tables are shown as a note, not walked (worker.boundary cut them already)


def body_text(body: bytes) -> tuple[str, str]:
    """The exact body as ("utf-8", text) when it decodes, else ("base64", ascii)."""
    try:
        return "utf-8", body.decode("utf-8")
    except UnicodeDecodeError:
        return "base64", base64.b64encode(body).decode("ascii")


def plain(value: Any, depth: int = 0) -> Any:
    """AMQP field values (datetimes, bytes, decimals, nested tables) as JSON-safe values.

    Total: integers wider than AMQP's and non-finite floats become text (JSON has no NaN,
    and Python will not print an integer of more than 4300 digits in decimal), tables
    nested deeper than 32 become a note, anything else becomes its text.
    """
    if isinstance(value, Mapping):
        if depth >= _MAX_NESTING:
            return f"(a table nested more than {_MAX_NESTING} deep)"
        return {as_text(key): plain(item, depth + 1) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        if depth >= _MAX_NESTING:
            return f"(an array nested more than {_MAX_NESTING} deep)"
        return [plain(item, depth + 1) for item in value]
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, int):
        return value if value in _INTEGERS else as_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return body_text(bytes(value))[1]
    return as_text(value)


def json_object(body: bytes, content_type: Any) -> dict[str, Any] | None:
    """Only JSON is ever deserialised, and only when the message says it is JSON."""
    media_type = (string(content_type) or "").split(";")[0].strip().lower()
    if media_type not in ACCEPTED_CONTENT_TYPES or len(body) > MAX_BODY_BYTES:
        return None  # a body larger than the worker reads is not read here either (too_large)
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, too deep, a number of over 4300 digits
        return None
    return document if isinstance(document, dict) else None


def string(value: Any) -> str | None:
    """Text as sent: a str, or bytes that are UTF-8 (some clients send text as bytes)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None


def text(value: Any) -> str | None:
    """Non-empty text, or None."""
    return string(value) or None


def count(value: Any) -> int | None:
    """A count as AMQP can carry one (0 to 2^63 - 1), or None."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_COUNT:
        return value
    return None


def moment(value: Any) -> datetime | None:
    """A time from a header: an ISO 8601 string, a datetime, or seconds since the epoch (how
    some clients hand over an AMQP timestamp they cannot make a datetime of); else None."""
    try:
        if isinstance(value, str):
            return utc(datetime.fromisoformat(value))
        if isinstance(value, datetime):
            return utc(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return None


def utc(when: datetime) -> datetime:
    """In UTC; naive means UTC. A time UTC cannot hold (9999-12-31T23:59:59-23:59) keeps its
    own offset: the same instant, and aware datetimes compare exactly whatever their offsets."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    try:
        return when.astimezone(UTC)
    except (OverflowError, ValueError):
        return when
