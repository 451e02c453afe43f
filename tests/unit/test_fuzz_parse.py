"""Fuzzing the wire contract: whatever the body, `parse` returns an event or raises InvalidInput,
and every event it returns fits every store."""

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import InvalidInput, OwnerChanged, RenewalApproaching, parse
from events.models import MAX_DAYS_UNTIL_RENEWAL
from support.messages import contact, owner_changed, renewal

JSON = "application/json"
NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)
extreme_times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=offsets
)
hostile_values = st.one_of(
    json_values,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**31, 2**63, -(2**63) - 1, 2**64, MAX_DAYS_UNTIL_RENEWAL + 1, -1, 0, True, 1.0, 1e308]),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),
    st.text(alphabet="\x00\x07\x0d\x1b\x7f\x85\x9b a", min_size=1, max_size=10),
    extreme_times.map(lambda moment: moment.isoformat()),
    st.integers(min_value=1, max_value=300).map(
        lambda depth: [[]] if depth == 1 else json.loads("[" * depth + "]" * depth)
    ),
)
PATHS = [
    ("id",), ("source",), ("type",), ("time",), ("subject",), ("specversion",), ("data",),
    ("data", "partner_id"), ("data", "client_id"), ("data", "client_name"), ("data", "renewal_date"),
    ("data", "days_until_renewal"), ("data", "subscription"), ("data", "decision_maker"),
    ("data", "decision_maker", "email"), ("data", "decision_maker", "name"), ("data", "decision_maker", "user_id"),
    ("data", "owner"), ("data", "partner_contact"), ("data", "partner_contact", "email"),
]  # fmt: skip
valid_messages = st.sampled_from(
    [
        renewal("c1", "p1", decision_maker=contact("dora"), id="r-1"),
        renewal("c1", None, days=None, id="r-2"),
        owner_changed("partner", "p1", "c1", partner_contact=contact("alice"), id="o-1"),
        owner_changed("default", "p1", "c1", id="o-2"),
    ]
)


def parsed_or_classified(body: bytes, content_type: Any = JSON) -> RenewalApproaching | OwnerChanged | None:
    """parse's result, None for InvalidInput; any other exception fails the test."""
    try:
        event = parse(body, content_type, now=NOW)
    except InvalidInput as problem:
        assert problem.reason in {"unsupported_content_type", "too_large", "invalid_json", "invalid_envelope",
                                  "invalid_payload", "unknown_event_type"}  # fmt: skip
        return None
    assert_storable(event)
    return event


def assert_storable(event: RenewalApproaching | OwnerChanged) -> None:
    """What the models let through fits every store: bounded days, no control characters, no NUL."""
    assert event.time - NOW <= timedelta(minutes=5)
    for text in strings(event.model_dump(mode="json")):
        assert not CONTROL.search(text), text
    if isinstance(event, RenewalApproaching):
        assert 0 <= event.days_until_renewal <= MAX_DAYS_UNTIL_RENEWAL


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return []


def mutated(message: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copy = json.loads(json.dumps(message))
    target = copy
    for step in path[:-1]:
        if not isinstance(target.get(step), dict):
            target[step] = {}
        target = target[step]
    target[path[-1]] = value
    return copy


@FUZZ
@given(
    st.binary(max_size=2048),
    st.sampled_from([JSON, "application/cloudevents+json; charset=utf-8", None, "text/plain"]),
)
def test_arbitrary_bytes_are_an_event_or_invalid_input(body: bytes, content_type: str | None) -> None:
    """Any bytes under any content type: parse never raises anything but InvalidInput."""
    parsed_or_classified(body, content_type)


@FUZZ
@given(json_values)
def test_arbitrary_json_values_are_an_event_or_invalid_input(value: Any) -> None:
    """Any JSON document (NaN and Infinity included) is classified, never an unexpected exception."""
    parsed_or_classified(json.dumps(value).encode())


@FUZZ
@given(valid_messages, st.lists(st.tuples(st.sampled_from(PATHS), hostile_values), min_size=1, max_size=3))
def test_valid_envelopes_with_hostile_fields_are_an_event_or_invalid_input(
    message: dict[str, Any], mutations: list[tuple[tuple[str, ...], Any]]
) -> None:
    """Wrong types, huge ints, deep nesting, control characters and extreme times in any field: classified, and what passes fits the store."""
    for path, value in mutations:
        message = mutated(message, path, value)
    parsed_or_classified(json.dumps(message).encode())


@FUZZ
@given(valid_messages, st.integers(min_value=150, max_value=5000), st.sampled_from(["[", '{"a":']))
def test_deep_nesting_anywhere_is_invalid_json(message: dict[str, Any], depth: int, opening: str) -> None:
    """Nesting past the reader's limit, at any depth and in any field, is always invalid_json."""
    closing = "]" if opening == "[" else "}"
    body = json.dumps({**message, "extra": "__deep__"}).replace(
        '"__deep__"', opening * depth + "1" + closing * depth
    )
    event = parsed_or_classified(body.encode())
    assert event is None or depth < 200


@FUZZ
@given(valid_messages, extreme_times)
def test_any_event_time_is_accepted_only_up_to_the_tolerance(
    message: dict[str, Any], moment: datetime
) -> None:
    """Every time from year 1 to 9999 at any offset either parses (when within five minutes of now or earlier) or is invalid_envelope."""
    event = parsed_or_classified(json.dumps({**message, "time": moment.isoformat()}).encode())
    if moment - NOW > timedelta(minutes=5):
        assert event is None
    elif "days_until_renewal" in message["data"] or message["type"] == "OwnerChanged":
        assert event is not None  # (a derived day count depends on the time, and may be out of range)
