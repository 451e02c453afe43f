"""Bytes and a content type in, a typed event or a classified `InvalidInput` out.

`parse` raises nothing else, whatever the body: a body is never a reason to retry.
"""

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails, from_json

from events.errors import InvalidInput
from events.models import (
    CONTROL_CHARACTERS,
    EMAIL_PATTERN,
    Envelope,
    Event,
    NotificationRequested,
    OwnerChanged,
    RenewalApproaching,
)
from events.registry import INPUT_BY_TYPE

ACCEPTED_CONTENT_TYPES = frozenset({"application/json", "application/cloudevents+json"})
MAX_BODY_BYTES = 256 * 1024
MAX_DETAIL_CHARS = 500
DEFAULT_MAX_FUTURE = timedelta(minutes=5)
"""How far ahead of our clock an event's `time` may be (the publisher's clock skew)."""

_EVENT: TypeAdapter[RenewalApproaching | OwnerChanged] = TypeAdapter(Event)
_CONTROL = re.compile(f"[{CONTROL_CHARACTERS}]")


def parse(
    body: bytes | bytearray,
    content_type: str | None,
    *,
    max_future: timedelta = DEFAULT_MAX_FUTURE,
    now: datetime | None = None,
) -> RenewalApproaching | OwnerChanged:
    """Parse one delivery, straight from bytes; raise `InvalidInput` saying exactly why not.

    An event whose `time` is more than `max_future` ahead of `now` (default: the clock now)
    is refused: last writer wins on event time, so a far-future time would pin a setting.
    """
    try:
        event = _validated(body, content_type)
    except InvalidInput:
        raise
    except MemoryError:  # the process is short of memory, not the body at fault: retry
        raise
    except RecursionError:
        raise InvalidInput("invalid_json", "nested too deeply to be read") from None
    except Exception as exc:  # defensive: no body may escape as anything but InvalidInput
        raise InvalidInput("invalid_payload", f"cannot be read: {_explained(exc)}") from None
    _check_time(event, max_future, datetime.now(UTC) if now is None else now)
    return event


def parse_notification(body: bytes) -> NotificationRequested:
    """Parse the worker's own output (for consumers, tools and tests)."""
    return NotificationRequested.model_validate_json(body)


def _validated(body: bytes | bytearray, content_type: str | None) -> RenewalApproaching | OwnerChanged:
    _check_frame(body, content_type)
    try:
        return _EVENT.validate_json(body)
    except ValidationError as exc:
        raise _classify(body, exc) from None


def _check_frame(body: bytes | bytearray, content_type: str | None) -> None:
    media_type = (content_type if isinstance(content_type, str) else "").split(";", 1)[0]
    if media_type.strip().lower() not in ACCEPTED_CONTENT_TYPES:
        accepted = sorted(ACCEPTED_CONTENT_TYPES)
        detail = f"content type {content_type!r} is not one of {accepted}"
        raise InvalidInput("unsupported_content_type", detail[:MAX_DETAIL_CHARS])
    if len(body) > MAX_BODY_BYTES:
        raise InvalidInput("too_large", f"body is {len(body)} bytes, limit {MAX_BODY_BYTES}")


def _check_time(event: RenewalApproaching | OwnerChanged, max_future: timedelta, now: datetime) -> None:
    ahead = event.time - now  # aware minus aware: exact, and no overflow even at year 1 or 9999
    if ahead > max_future:
        raise InvalidInput(
            "invalid_envelope",
            f"time: {event.time.isoformat()} is {_seconds(ahead)} ahead of this worker's clock,"
            f" more than the tolerated clock skew of {_seconds(max_future)}",
        )


def _classify(body: bytes | bytearray, exc: ValidationError) -> InvalidInput:
    """The slow path, taken only for bad input: say which layer of the message is wrong."""
    unreadable = [problem for problem in exc.errors(include_url=False) if problem["type"] == "json_invalid"]
    if unreadable:  # too deep, a number out of range, not UTF-8, not JSON at all
        return InvalidInput("invalid_json", _message(unreadable[0])[:MAX_DETAIL_CHARS])
    try:
        document: Any = from_json(body)  # the reader validate_json used: same limits, same values
    except ValueError as decode_error:  # a string validate_json left unread, e.g. a lone surrogate
        return InvalidInput("invalid_json", str(decode_error)[:MAX_DETAIL_CHARS])
    if not isinstance(document, dict):
        return InvalidInput("invalid_envelope", f"expected a JSON object, got {type(document).__name__}")
    try:
        Envelope.model_validate(document)
    except ValidationError as envelope_error:
        return InvalidInput("invalid_envelope", describe(envelope_error))
    kind = INPUT_BY_TYPE.get(document["type"])
    if kind is None:
        known = ", ".join(sorted(INPUT_BY_TYPE))
        return InvalidInput("unknown_event_type", f"type {document['type']!r} is not one of {known}")
    if "data" not in document:
        return InvalidInput("invalid_payload", "data: field required")
    try:
        kind.model.model_validate(document)
    except ValidationError as payload_error:
        return InvalidInput("invalid_payload", describe(payload_error))
    return InvalidInput("invalid_payload", describe(exc))  # pragma: no cover - defensive


def describe(error: ValidationError) -> str:
    """One bounded line: `where: what` for each problem pydantic found."""
    parts = []
    for problem in error.errors(include_url=False):
        where = ".".join(str(step) for step in problem["loc"]) or "(message)"
        parts.append(f"{where}: {_message(problem)}")
    return "; ".join(parts)[:MAX_DETAIL_CHARS]


def _message(problem: ErrorDetails) -> str:
    """pydantic's message, except where a pattern alone would not tell a person what is wrong."""
    if problem["type"] == "string_pattern_mismatch" and isinstance(problem["input"], str):
        control = _CONTROL.search(problem["input"])
        if control is not None:
            return f"control character {control.group()!r} at position {control.start()} is not allowed"
        if problem.get("ctx", {}).get("pattern") == EMAIL_PATTERN:
            return "not an e-mail address (one @, no spaces, a dot in the domain)"
    return problem["msg"]


def _seconds(span: timedelta) -> str:
    """A span to the second, as timedelta prints it: `0:05:00`, `2914226 days, 8:54:19`."""
    return str(span - timedelta(microseconds=span.microseconds))


def _explained(exc: BaseException) -> str:
    try:
        text = f"{type(exc).__name__}: {exc}"
    except Exception:  # an exception whose message itself cannot be made
        text = type(exc).__name__
    return text[:MAX_DETAIL_CHARS]
