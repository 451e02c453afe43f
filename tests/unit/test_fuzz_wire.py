"""Fuzzing the whole path from an event to the bytes on the wire: body -> parse -> decide ->
notification -> outgoing message -> AMQP frames, decoded again by py-amqp; and for the events
that fail, the dead-letter copy with whatever decodable properties the original carried.

Whatever the ids (any Unicode, any length), parse refuses what could not go out, and what it
accepts is always encoded: nothing raises but InvalidInput, and the frames say what was meant.
"""

import json
from datetime import UTC, datetime, timedelta
from struct import unpack_from
from typing import Any

from amqp.serialization import decode_properties_basic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import InvalidInput, RenewalApproaching, parse, parse_notification
from handlers import HANDLERS
from tests.fakes import InMemoryProjection
from worker.broker.publisher import encoded_size, frames
from worker.messaging import Delivery, Outgoing, Unencodable, bare_copy
from worker.service.failures import FailurePolicy
from worker.service.notifications import NotificationWriter, time_of
from worker.settings import Settings

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FRAME_MAX = 131072
SETTINGS = Settings()
WRITER = NotificationWriter(SETTINGS.source, SETTINGS.notifications_exchange)
POLICY = FailurePolicy(SETTINGS, encoded_size=encoded_size)

printable = st.characters(exclude_categories=["Cc", "Cs"])
# Ids around the limit: short, up to 255 bytes of 1- to 4-byte characters, and beyond.
ids = (
    st.sampled_from(["p1", "c1", "e" * 255, "e" * 256, "€" * 85, "€" * 86, "😀" * 63 + "abc", "😀" * 64])
    | st.text(printable, min_size=1, max_size=40)
    | st.text(printable, min_size=60, max_size=300)
)
contacts = st.fixed_dictionaries(
    {"email": st.sampled_from(["dora@client.example", "Ünï@exämple.org"])},
    optional={"name": st.none() | st.text(printable, max_size=50), "user_id": st.none() | ids},
)


@st.composite
def renewal_bodies(draw: st.DrawFn) -> bytes:
    data: dict[str, Any] = {
        "partner_id": draw(st.none() | ids),
        "client_id": draw(ids),
        "renewal_date": "2026-12-20",
        "days_until_renewal": draw(st.integers(min_value=0, max_value=400)),
        "client_name": draw(st.none() | st.text(printable, max_size=100)),
        "decision_maker": draw(contacts),
    }
    envelope = {"specversion": "1.0", "id": draw(ids), "source": draw(ids), "type": "RenewalApproaching",
                "time": NOW.isoformat(), "data": data}  # fmt: skip
    if draw(st.booleans()):
        envelope["subject"] = draw(st.text(printable, max_size=100))
    return json.dumps(envelope, ensure_ascii=draw(st.booleans())).encode()


# Properties py-amqp decodes on the way in (short strings of at most 255 bytes, odd headers): the
# dead-letter copy of such a delivery must go out too.
short_strings = st.text(printable, max_size=255).filter(lambda text: len(text.encode()) <= 255)
header_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(printable, max_size=300),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(printable, max_size=20), inner, max_size=3)
    ),
    max_leaves=8,
)
incoming_properties = st.fixed_dictionaries(
    {"content_type": st.just("application/cloudevents+json")},
    optional={
        "correlation_id": short_strings,
        "message_id": short_strings,
        "reply_to": short_strings,
        "type": short_strings,
        "app_id": short_strings,
        "priority": st.integers(0, 255),
        "timestamp": st.integers(0, 2**64 - 1),
        "application_headers": st.dictionaries(
            st.text(printable, min_size=1, max_size=30), header_values, max_size=6
        ),
    },
)


def decoded(message: Outgoing) -> tuple[str, str, dict[str, Any], bytes]:
    """Lay the message out as frames and read them back as a broker would: exchange, routing key,
    properties (py-amqp's decoder) and body."""
    wire = b"".join(frames(1, FRAME_MAX, message))
    offset, payloads = 0, []
    while offset < len(wire):
        kind, channel, size = unpack_from(">BHI", wire, offset)
        assert channel == 1 and wire[offset + 7 + size] == 0xCE and size <= FRAME_MAX - 8
        payloads.append((kind, wire[offset + 7 : offset + 7 + size]))
        offset += 8 + size
    (method_kind, method), (header_kind, header), *body_frames = payloads
    assert (method_kind, header_kind) == (1, 2) and all(kind == 3 for kind, _ in body_frames)
    exchange_size = method[6]
    exchange = method[7 : 7 + exchange_size].decode("utf-8", "surrogatepass")
    key_at = 7 + exchange_size
    routing_key = method[key_at + 1 : key_at + 1 + method[key_at]].decode("utf-8", "surrogatepass")
    (body_size,) = unpack_from(">Q", header, 4)
    properties = decode_properties_basic(header, 12)[0]
    body = b"".join(payload for _, payload in body_frames)
    assert len(body) == body_size
    return exchange, routing_key, properties, body


@FUZZ
@given(renewal_bodies(), incoming_properties)
def test_from_any_event_body_to_the_encoded_frames_nothing_raises_but_invalid_input(
    body: bytes, properties: dict[str, Any]
) -> None:
    """Any reminder (ids of any length and script): either parse refuses it as InvalidInput, or its notification is encoded into frames that py-amqp decodes to the event id as correlation_id and the notification as body; and its dead-letter copy, whatever decodable properties it came with, is encoded too (bare if need be)."""
    delivery = Delivery(body, properties, "renewals.events", "renewal.approaching", 1)
    try:
        event = parse(body, "application/cloudevents+json", now=NOW, max_future=timedelta(minutes=5))
    except InvalidInput as problem:
        failure = POLICY.handle(delivery, problem)
    else:
        assert isinstance(event, RenewalApproaching)
        decision = HANDLERS[RenewalApproaching](event, projection=InMemoryProjection())
        assert decision.notification is not None
        WRITER.check(decision.notification)
        row = WRITER.row(decision.notification, time_of(NOW))
        exchange, routing_key, sent, notification = decoded(WRITER.message(row))
        assert (exchange, routing_key) == (SETTINGS.notifications_exchange, row.routing_key)
        assert sent["correlation_id"] == event.id and sent["message_id"] == row.notification_id
        assert parse_notification(notification).data.causation_id == event.id
        failure = POLICY.handle(delivery, RuntimeError("a bug, for the retry copy"))
    try:
        copy = decoded(failure.outgoing)
    except Unencodable:
        copy = decoded(bare_copy(failure.outgoing))
    assert copy[3] == body and copy[2]["delivery_mode"] == 2
    assert copy[2]["application_headers"]["x-original-routing-key"] == "renewal.approaching"
