"""Bytes and a content type in, a typed event or a classified `InvalidInput` out."""

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

from events.errors import InvalidInput
from events.models import Envelope, Event, NotificationRequested, OwnerChanged, RenewalApproaching
from events.registry import INPUT_BY_TYPE

ACCEPTED_CONTENT_TYPES = frozenset({"application/json", "application/cloudevents+json"})
MAX_BODY_BYTES = 256 * 1024
MAX_DETAIL_CHARS = 500

_EVENT: TypeAdapter[RenewalApproaching | OwnerChanged] = TypeAdapter(Event)


def parse(body: bytes, content_type: str | None) -> RenewalApproaching | OwnerChanged:
    """Parse one delivery, straight from bytes; raise `InvalidInput` saying exactly why not."""
    _check_frame(body, content_type)
    try:
        return _EVENT.validate_json(body)
    except ValidationError as exc:
        raise _classify(body, exc) from None


def parse_notification(body: bytes) -> NotificationRequested:
    """Parse the worker's own output (for consumers, tools and tests)."""
    return NotificationRequested.model_validate_json(body)


def _check_frame(body: bytes, content_type: str | None) -> None:
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in ACCEPTED_CONTENT_TYPES:
        raise InvalidInput(
            "unsupported_content_type",
            f"content type {content_type!r} is not one of {sorted(ACCEPTED_CONTENT_TYPES)}",
        )
    if len(body) > MAX_BODY_BYTES:
        raise InvalidInput("too_large", f"body is {len(body)} bytes, limit {MAX_BODY_BYTES}")


def _classify(body: bytes, exc: ValidationError) -> InvalidInput:
    """The slow path, taken only for bad input: say which layer of the message is wrong."""
    try:
        document: Any = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as decode_error:
        return InvalidInput("invalid_json", str(decode_error))
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
        parts.append(f"{where}: {problem['msg']}")
    return "; ".join(parts)[:MAX_DETAIL_CHARS]
