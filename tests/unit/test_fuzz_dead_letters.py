"""Fuzzing the dead-letter reading code: any header table, any properties, any body, through
`DeadLetter.read(...)`, its summary, record and replay plan, the filters and the printed
tables: nothing raises, nothing printed holds a raw control character, and no plan ever
sends anything to the worker's output."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.letters import stored
from support.messages import contact, encode, envelope, owner_changed, renewal
from worker.cli.dlq_output import LIST_COLUMNS, PLAN_COLUMNS, described, listed, row
from worker.dead_letters import DeadLetter, Routes, parse_when, plan
from worker.dead_letters.sql import to_us
from worker.settings import Settings
from worker.tools.tables import render

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ROUTES = Routes.of(Settings())
OUTPUT = {ROUTES.notifications_exchange, ROUTES.unrouted}
SHOWN_ONLY_ESCAPED = {chr(code) for code in [*range(0x20), *range(0x7F, 0xA0)]}

offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
edge_times = st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00", "yesterday", ""])
any_times = st.datetimes(timezones=st.none() | offsets)
amqp_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63, -(2**63) - 1, 2**64]),  # beyond AMQP's integers; raw timestamps out of range
    st.sampled_from([1, -1]).map(
        lambda sign: sign * 10**5000
    ),  # too long for decimal (built lazily: no repr)
    st.floats(),
    st.decimals(),
    st.sampled_from([Decimal("NaN"), Decimal("-Infinity"), Decimal("1E+999999")]),
    st.text(max_size=30),
    st.text(alphabet="\x00\x07\x08\x0d\x1b\x7f\x85\x9b\u202e\u2028 [m;a", max_size=12),
    st.binary(max_size=30),
    any_times,
    any_times.map(lambda moment: moment.isoformat()),
    edge_times,
)
amqp_values = st.recursive(
    amqp_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)
header_names = st.sampled_from([
    "x-error-reason", "x-error-detail", "x-error-traceback", "x-original-exchange", "x-original-routing-key",
    "x-failed-at", "x-attempts", "x-delivery-count", "x-replay-count", "x-worker-host", "x-first-death-reason",
]) | st.text(max_size=12)  # fmt: skip
deaths = st.lists(
    st.dictionaries(
        st.sampled_from(["count", "reason", "queue", "time", "exchange", "routing-keys"]), amqp_values
    ),
    max_size=2,
)
headers = st.dictionaries(header_names, amqp_values, max_size=8).flatmap(
    lambda table: st.one_of(st.just(table), deaths.map(lambda death: {**table, "x-death": death}))
)
properties = st.fixed_dictionaries(
    {},
    optional={
        "content_type": st.sampled_from(["application/json", "application/cloudevents+json", "text/plain"])
        | amqp_values,
        "message_id": amqp_values,
        "type": st.sampled_from(["RenewalApproaching", "OwnerChanged", "NotificationRequested"])
        | amqp_values,
        "timestamp": amqp_values,
        "delivery_mode": amqp_values,
        "headers": headers | amqp_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([
        encode(renewal("c\x1b[2J", "p1", decision_maker=contact("dora"), id="evt-\x1b]0;x\x07")),
        encode(owner_changed("partner", "p1", partner_contact=contact("alice"))),
        encode(envelope("NotificationRequested", {"to": [{"email": "victim@example.com"}]})),
        b'{"id": ' + b"[" * 3000 + b"]" * 3000 + b"}",
        b'{"id": 1' + b"0" * 5000 + b"}",
    ]),
    st.recursive(st.none() | st.integers() | st.text(max_size=10), lambda c: st.lists(c) | st.dictionaries(st.text(max_size=5), c))
    .map(lambda value: json.dumps({"type": "RenewalApproaching", "id": "x", "data": value}).encode()),
)  # fmt: skip


def assert_printable(text: str, lines: int | None = None) -> None:
    """No control character reaches the terminal but the line breaks, and a table has just its own lines."""
    assert not (SHOWN_ONLY_ESCAPED - {"\n"}) & set(text)
    assert lines is None or len(text.split("\n")) == lines


@FUZZ
@given(st.integers(min_value=1, max_value=10**6), properties, bodies)
def test_any_dead_letter_reads_summarises_exports_and_plans_without_raising(
    position: int, fields: dict[str, Any], body: bytes
) -> None:
    """Any header table and properties in: summary, strict-JSON record, replay headers and plans out, never to the output."""
    letter = DeadLetter.read(position, fields, body)
    summary = letter.summary()
    json.dumps(summary, allow_nan=False)
    json.dumps(letter.as_record(), allow_nan=False)
    assert letter.replay_properties()["headers"]["x-replay-count"] == letter.replay_count + 1
    for routes in (ROUTES, replace(ROUTES, to_original=True)):
        step = plan(letter, routes, force=True)
        assert (step.action == "replay") == (step.to is not None)
        if step.to is not None:
            assert step.to[0] not in OUTPUT and step.to != ("", ROUTES.unrouted)
            assert routes.to_original or step.to[0] == ROUTES.events_exchange


@FUZZ
@given(
    properties,
    bodies,
    st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+14:00", "2026-11-20", "7d"]),
)
def test_any_failure_time_compares_with_any_since_and_until(
    fields: dict[str, Any], body: bytes, when: str
) -> None:
    """--since and --until, even at the edges of the calendar, compare with any x-failed-at
    without raising, and the store's microsecond keys order them as the times are ordered."""
    letter = DeadLetter.read(1, fields, body)
    moment = parse_when(when, now=datetime(2026, 11, 20, tzinfo=UTC))
    failed_at = letter.failed_at
    if failed_at is not None:
        assert (to_us(failed_at) < to_us(moment)) is (failed_at < moment)
        assert (to_us(failed_at) == to_us(moment)) is (failed_at == moment)


@FUZZ
@given(st.lists(st.tuples(properties, bodies), min_size=1, max_size=4))
def test_list_dry_run_and_show_print_no_raw_control_character(
    letters: list[tuple[dict[str, Any], bytes]],
) -> None:
    """The list table, the dry-run table and `show` escape every control character, whatever the dead letters hold."""
    read = [DeadLetter.read(position, fields, body) for position, (fields, body) in enumerate(letters, 1)]
    assert_printable(
        render(
            [
                row(
                    listed(
                        stored(
                            letter.body, dict(letter.properties), dict(letter.headers), number=letter.position
                        ),
                        ROUTES,
                    )
                )
                for letter in read
            ],
            LIST_COLUMNS,
        ),
        2 + len(read),
    )
    steps = [plan(letter, ROUTES) for letter in read]
    plans = [{**row(step.letter.summary()), "action": step.action, "to / why": step.note} for step in steps]
    assert_printable(render(plans, PLAN_COLUMNS), 2 + len(read))
    for letter in read:
        assert_printable(described(stored(letter.body, dict(letter.properties), dict(letter.headers))))


@FUZZ
@given(
    st.lists(st.dictionaries(st.text(max_size=8), amqp_values, max_size=5), max_size=4),
    st.lists(st.text(max_size=8), max_size=4),
)
def test_the_table_renderer_takes_any_values(rows: list[dict[str, Any]], columns: list[str]) -> None:
    """render() prints any cell value under any column name, aligned, with nothing raw."""
    assert_printable(render(rows, columns), 2 + len(rows))
