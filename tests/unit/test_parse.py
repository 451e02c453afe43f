"""The wire contract: parse() accepts good events and classifies every kind of bad one."""

import json

import pytest

from events import MAX_BODY_BYTES, InvalidInput, OwnerChanged, RenewalApproaching, json_schemas, parse
from tests.builders import contact, encode, envelope, owner_changed, renewal

JSON = "application/json"


def reason_of(body: bytes, content_type: str | None = JSON) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse(body, content_type)
    return caught.value.reason


def test_parses_a_renewal_straight_from_bytes() -> None:
    """A complete RenewalApproaching becomes a typed event with its payload."""
    event = parse(encode(renewal("c9", "p9", decision_maker=contact("dora"))), JSON)
    assert isinstance(event, RenewalApproaching)
    assert (event.data.client_id, event.data.partner_id, event.data.decision_maker.email) == (  # type: ignore[union-attr]
        "c9",
        "p9",
        "dora@partner.example",
    )


def test_cloudevents_content_type_with_parameters_is_accepted() -> None:
    """application/cloudevents+json; charset=utf-8 is JSON too."""
    assert isinstance(
        parse(encode(owner_changed("platform")), "application/cloudevents+json; charset=utf-8"), OwnerChanged
    )


def test_days_until_renewal_is_derived_from_the_event_time_when_absent() -> None:
    """No days_until_renewal: days from the event's own date to the renewal date."""
    event = parse(
        encode(renewal(days=None, renewal_date="2026-12-20", time="2026-11-20T23:30:00-05:00")), JSON
    )
    assert isinstance(event, RenewalApproaching)
    assert event.days_until_renewal == 30


def test_a_renewal_date_before_the_event_is_invalid_payload() -> None:
    """A derived negative day count would be nonsense: refuse it."""
    assert reason_of(encode(renewal(days=None, renewal_date="2026-11-01"))) == "invalid_payload"


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/xml", "application/x-python-pickle"]
)
def test_other_content_types_are_never_deserialised(content_type: str | None) -> None:
    """Anything but JSON is refused before the body is looked at."""
    assert reason_of(b"\x80\x04K\x01.", content_type) == "unsupported_content_type"


def test_bodies_over_256_kib_are_too_large() -> None:
    """The size limit comes before any parsing."""
    assert reason_of(b" " * (MAX_BODY_BYTES + 1)) == "too_large"


@pytest.mark.parametrize("body", [b"{", b"not json", b"\xff\xfe", b""])
def test_broken_json_is_invalid_json(body: bytes) -> None:
    """Bytes that are not JSON at all."""
    assert reason_of(body) == "invalid_json"


@pytest.mark.parametrize(
    "document",
    [
        [1, 2],
        {"id": "x"},
        {**renewal(), "specversion": "0.3"},
        {**renewal(), "time": "2026-11-20T09:00:00"},
        {**renewal(), "id": ""},
    ],
    ids=["not-an-object", "missing-attributes", "wrong-specversion", "time-without-offset", "empty-id"],
)
def test_bad_envelopes_are_invalid_envelope(document: object) -> None:
    """The CloudEvents attributes are checked before the type and the payload."""
    assert reason_of(json.dumps(document).encode()) == "invalid_envelope"


def test_unknown_types_are_unknown_event_type() -> None:
    """A well-formed envelope of a type the worker does not consume."""
    assert reason_of(encode(envelope("InvoicePaid", {"amount": 3}))) == "unknown_event_type"


@pytest.mark.parametrize(
    "document",
    [
        {**renewal(), "data": {"partner_id": "p1", "renewal_date": "2026-12-20"}},
        {**renewal(), "data": {"partner_id": "p1", "client_id": "c1", "renewal_date": "20.12.2026"}},
        {
            **renewal(),
            "data": {
                "partner_id": "p1",
                "client_id": "c1",
                "renewal_date": "2026-12-20",
                "days_until_renewal": -1,
            },
        },
        renewal(decision_maker={"email": "not-an-address"}),
        owner_changed("partner"),
        owner_changed("default", client_id=None),
        owner_changed("vendor"),
        {k: v for k, v in renewal().items() if k != "data"},
    ],
    ids=[
        "missing-client",
        "bad-date",
        "negative-days",
        "bad-email",
        "partner-without-contact",
        "default-partner-wide",
        "unknown-owner",
        "no-data",
    ],
)
def test_bad_payloads_are_invalid_payload(document: dict[str, object]) -> None:
    """Including the invalid combinations of owner and contact that docs/domain.md lists."""
    assert reason_of(json.dumps(document).encode()) == "invalid_payload"


def test_errors_name_the_field_that_is_wrong() -> None:
    """The detail says where the problem is, so a dead letter explains itself."""
    with pytest.raises(InvalidInput) as caught:
        parse(encode(owner_changed("partner")), JSON)
    assert "partner_contact" in caught.value.detail


def test_json_schemas_of_the_three_messages_can_be_exported() -> None:
    """Each schema names the payload's required fields."""
    schemas = json_schemas()
    assert set(schemas) == {"RenewalApproaching", "OwnerChanged", "NotificationRequested"}
    assert "client_id" in json.dumps(schemas["RenewalApproaching"])
    assert "audience" in json.dumps(schemas["NotificationRequested"])
