"""The wire contract: parse() accepts good events and classifies every kind of bad one."""

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events import (
    DEFAULT_MAX_FUTURE,
    MAX_BODY_BYTES,
    InvalidInput,
    OwnerChanged,
    RenewalApproaching,
    json_schemas,
    parse,
)
from support.messages import contact, encode, envelope, owner_changed, renewal

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


# --- hostile input: whatever the body, only a classified InvalidInput comes out -----------

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def invalid(body: bytes, **options: Any) -> InvalidInput:
    with pytest.raises(InvalidInput) as caught:
        parse(body, JSON, **options)
    return caught.value


@pytest.mark.parametrize("opening", [b"[", b'{"a":'])
def test_json_nested_a_thousand_deep_is_invalid_json(opening: bytes) -> None:
    """A 2 KB body of 1000 nested arrays or objects is invalid_json saying so, not a RecursionError."""
    closing = b"]" if opening == b"[" else b"}"
    problem = invalid(opening * 1000 + b"1" + closing * 1000)
    assert problem.reason == "invalid_json" and "recursion limit" in problem.detail


def test_deep_nesting_inside_a_valid_envelope_is_invalid_json() -> None:
    """Depth hidden in a field the models ignore is refused too, before any payload check."""
    body = encode(renewal()).replace(b'"data": {', b'"extra": ' + b"[" * 500 + b"]" * 500 + b', "data": {')
    assert invalid(body).reason == "invalid_json"


@pytest.mark.parametrize(
    ("days", "reason"),
    [
        (str(2**63), "invalid_payload"),  # overflows SQLite's INTEGER
        (str(2**31), "invalid_payload"),  # overflows PostgreSQL's INTEGER
        ("36501", "invalid_payload"),
        ("9" * 5000, "invalid_json"),  # a number no JSON reader here holds
    ],
    ids=["2^63", "2^31", "just-over-a-century", "5000-digits"],
)
def test_days_until_renewal_beyond_a_century_is_refused(days: str, reason: str) -> None:
    """days_until_renewal is bounded to 0..36500 so that it fits every store; a number too long to read is invalid JSON."""
    body = encode(renewal()).replace(b'"days_until_renewal": 30', b'"days_until_renewal": ' + days.encode())
    assert invalid(body).reason == reason


def test_a_century_of_days_is_still_accepted() -> None:
    """36500 is the largest figure the contract takes."""
    event = parse(encode(renewal(days=36500)), JSON)
    assert isinstance(event, RenewalApproaching) and event.days_until_renewal == 36500


def test_a_derived_day_count_beyond_a_century_is_invalid_payload() -> None:
    """Without days_until_renewal, a renewal_date in year 9999 derives far more than 36500 days: refused."""
    problem = invalid(encode(renewal(days=None, renewal_date="9999-12-31")))
    assert problem.reason == "invalid_payload" and "more than 36500" in problem.detail


@pytest.mark.parametrize(
    ("where", "value"),
    [
        ("id", "evt\x00-1"),
        ("source", "urn:\x1b[2Jbilling"),
        ("subject", "s\x07"),
        ("data.client_id", "c\x00"),
        ("data.partner_id", "p\r1"),
        ("data.client_name", "ACME\x1b[8m hidden"),
        ("data.subscription", "gold\x7f"),
        ("data.decision_maker.name", "Dora\x9b31m"),
        ("data.decision_maker.user_id", "u\x85"),
    ],
)
def test_control_characters_in_any_id_or_text_are_invalid(where: str, value: str) -> None:
    """NUL, ESC, BEL, CR, DEL and C1 controls are refused in every id and text field, naming the character."""
    message = renewal(decision_maker=contact("dora"))
    *parents, name = where.split(".")
    target = message
    for parent in parents:
        target = target[parent]
    target[name] = value
    problem = invalid(encode(message))
    assert problem.reason == ("invalid_envelope" if not parents else "invalid_payload")
    assert problem.detail.startswith(where + ": control character")


def test_an_owner_change_with_nul_in_its_ids_is_invalid_payload() -> None:
    """OwnerChanged's partner and client ids take no NUL either (PostgreSQL text cannot hold one)."""
    assert invalid(encode(owner_changed("platform", "p\x00", "c1"))).reason == "invalid_payload"
    assert invalid(encode(owner_changed("platform", "p1", "c\x00"))).reason == "invalid_payload"


@pytest.mark.parametrize(
    "address", ["dora\x1b@partner.example", "dora@partner\x00.example", "dora@partner.example\x85"]
)
def test_an_email_with_control_characters_fails_the_email_check(address: str) -> None:
    """An ESC, NUL or C1 control anywhere in an address makes it invalid_payload."""
    problem = invalid(encode(renewal(decision_maker={"email": address})))
    assert problem.reason == "invalid_payload" and "decision_maker.email" in problem.detail


def test_over_long_ids_and_texts_are_invalid() -> None:
    """Ids hold at most 255 bytes in UTF-8 (an AMQP short string) and free text at most 1000 characters."""
    assert invalid(encode(renewal("c" * 256))).reason == "invalid_payload"
    message = renewal()
    message["data"]["client_name"] = "n" * 1001
    assert invalid(encode(message)).reason == "invalid_payload"
    message["data"]["client_name"] = "n" * 1000
    assert parse(encode({**message, "id": "e" * 255}), JSON).data.client_name == "n" * 1000  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        (("id",), "e" * 256),
        (("id",), "€" * 86),  # 86 characters, 258 bytes
        (("source",), "😀" * 64),  # 64 characters, 256 bytes
        (("data", "client_id"), "ü" * 128),
        (("data", "partner_id"), "€" * 86),
        (("data", "decision_maker", "user_id"), "€" * 86),
    ],
)
def test_ids_are_bounded_in_bytes_not_characters(field: tuple[str, ...], value: str) -> None:
    """An id of at most 255 characters but more than 255 bytes is invalid at once, saying how many bytes it has; one byte less is accepted."""
    message = renewal(decision_maker=contact("dora"))
    where = message
    for step in field[:-1]:
        where = where[step]
    where[field[-1]] = value
    problem = invalid(encode(message))
    assert problem.reason == ("invalid_envelope" if len(field) == 1 else "invalid_payload")
    assert ".".join(field) in problem.detail
    encoded = len(value.encode())
    assert f"at most 255 bytes in UTF-8 (an AMQP short string), not {encoded}" in problem.detail or (
        len(value) > 255 and "at most 255 characters" in problem.detail
    )
    fitting = value.encode()[:255].decode(errors="ignore")
    where[field[-1]] = fitting
    assert parse(encode(message), JSON, now=NOW)


def test_an_event_time_beyond_the_tolerance_is_invalid_envelope() -> None:
    """An OwnerChanged dated 9999-12-31 would pin its setting forever: refused, saying how far ahead and the tolerance."""
    problem = invalid(encode(owner_changed("platform", time="9999-12-31T23:59:59-23:59")), now=NOW)
    assert problem.reason == "invalid_envelope"
    assert problem.detail.startswith("time: 9999-12-31T23:59:59-23:59 is 2912120 days, 14:58:59 ahead")
    assert "tolerated clock skew of 0:05:00" in problem.detail


def test_an_event_time_just_within_the_tolerance_is_accepted_and_just_beyond_is_not() -> None:
    """Five minutes ahead is clock skew; a second more is not; the tolerance is a parameter."""
    within = (NOW + timedelta(minutes=5)).isoformat()
    beyond = (NOW + timedelta(minutes=5, seconds=1)).isoformat()
    assert isinstance(parse(encode(owner_changed("platform", time=within)), JSON, now=NOW), OwnerChanged)
    assert invalid(encode(owner_changed("platform", time=beyond)), now=NOW).reason == "invalid_envelope"
    assert parse(
        encode(owner_changed("platform", time=beyond)), JSON, now=NOW, max_future=timedelta(minutes=6)
    )


def test_the_default_tolerance_is_five_minutes_against_the_clock() -> None:
    """Without `now`, parse compares with the clock: an event an hour ahead is refused, one a minute ahead is not."""
    assert timedelta(minutes=5) == DEFAULT_MAX_FUTURE
    soon = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert parse(encode(owner_changed("platform", time=soon)), JSON)
    assert invalid(encode(owner_changed("platform", time=later))).reason == "invalid_envelope"


def test_the_earliest_time_a_model_holds_is_accepted() -> None:
    """Year 1 at +14:00 (year 0 in UTC) parses; being in the past is no error."""
    event = parse(encode(owner_changed("platform", time="0001-01-01T00:00:00+14:00")), JSON)
    assert event.time.year == 1


def test_a_lone_surrogate_is_invalid_json() -> None:
    """A string that is no Unicode text (an unpaired \\ud800 escape) is refused as JSON, not stored."""
    assert invalid(encode(renewal()).replace(b'"c1"', b'"c\\ud800"')).reason == "invalid_json"


def test_a_content_type_that_is_not_text_is_unsupported() -> None:
    """Even a content type of the wrong Python type is classified, not a TypeError."""
    assert reason_of(encode(renewal()), b"application/json") == "unsupported_content_type"  # type: ignore[arg-type]
