"""Reading one delivery: first its AMQP envelope (decodable properties, a body that is the
bytes themselves), then the body (`events.parse`). Either raises `InvalidInput` saying why."""

from datetime import datetime, timedelta

from events import InvalidInput, OwnerChanged, RenewalApproaching, parse
from worker.messaging import Delivery

# Content encodings that leave the body as it is ("utf-8" is what kombu's JSON publishers
# set: a charset, not a transformation).
_IDENTITY_ENCODINGS = frozenset({"", "identity", "utf-8", "utf8"})


def read(delivery: Delivery, *, now: datetime, max_future: timedelta) -> RenewalApproaching | OwnerChanged:
    """The event a delivery carries."""
    check_transport(delivery)
    return parse(delivery.body, delivery.content_type, max_future=max_future, now=now)


def check_transport(delivery: Delivery) -> None:
    """What the AMQP envelope must be before the body is looked at: decodable properties,
    and a body that is the bytes themselves (no compression, no content encoding)."""
    if delivery.problem is not None:
        raise InvalidInput("invalid_properties", f"properties could not be decoded: {delivery.problem}")
    encoding = delivery.properties.get("content_encoding")
    if encoding is not None and str(encoding).strip().lower() not in _IDENTITY_ENCODINGS:
        raise InvalidInput("unsupported_content_encoding", f"content encoding {str(encoding)[:100]!r}")
    compression = delivery.headers.get("compression")
    if compression is not None:
        raise InvalidInput("unsupported_content_encoding", f"compression header {str(compression)[:100]!r}")
