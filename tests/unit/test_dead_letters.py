"""Reading dead letters and planning replays, from headers shaped as pika decodes them: no broker."""

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from support.letters import stored
from support.messages import encode, envelope, renewal
from worker.cli.dlq_output import LIST_COLUMNS, described, listed, row
from worker.dead_letters import DeadLetter, Routes, parse_when, plan
from worker.dead_letters.model import LetterFilter, NewLetter, StoredLetter
from worker.dead_letters.records import DeadLetterRecords
from worker.dead_letters.replays import InvalidRate, run
from worker.dead_letters.sql import to_us
from worker.settings import Settings
from worker.store import open_store
from worker.tools.tables import render

CLOUDEVENTS = "application/cloudevents+json"
ROUTES = Routes.of(Settings())
WORKER_HEADERS = {
    "x-error-reason": "no_recipient",
    "x-error-detail": "owner is 'platform', no decision maker\nis known",
    "x-original-exchange": "renewals.events",
    "x-original-routing-key": "renewal.approaching",
    "x-failed-at": "2026-11-20T09:00:01.250+00:00",
    "x-attempts": 1,
    "x-worker-version": "0.1.0",
    "x-worker-host": "host-1",
}
BROKER_DEATH = {
    "x-death": [
        {
            "count": 1,
            "reason": "delivery_limit",
            "queue": "renewals.worker",
            "time": datetime(2026, 11, 20, 9, 5, tzinfo=UTC),
            "exchange": "renewals.events",
            "routing-keys": ["owner.changed"],
        }
    ],
    "x-first-death-exchange": "renewals.events",
    "x-first-death-queue": "renewals.worker",
    "x-first-death-reason": "delivery_limit",
    "x-delivery-count": 2,
}


def letter(headers: dict, body: bytes | None = None, position: int = 1, **properties) -> DeadLetter:
    body = encode(renewal("c1", "p1", id="evt-1")) if body is None else body
    fields = {"content_type": CLOUDEVENTS, "delivery_mode": 2, "headers": headers, **properties}
    return DeadLetter.read(position, fields, body)


def kept(dead: DeadLetter) -> StoredLetter:
    """The letter as the store would hand it back."""
    return stored(dead.body, dict(dead.properties), dict(dead.headers), number=dead.position)


def test_a_worker_dead_letter_reads_from_its_own_headers() -> None:
    """Reason, one-line detail, failure time, attempts and origin come from the x-error/x-original headers."""
    summary = letter(WORKER_HEADERS).summary()
    assert summary == {
        "position": 1,
        "id": "evt-1",
        "type": "RenewalApproaching",
        "reason": "no_recipient",
        "detail": "owner is 'platform', no decision maker is known",
        "failed_at": "2026-11-20T09:00:01.250+00:00",
        "attempts": 1,
        "replays": 0,
        "exchange": "renewals.events",
        "routing_key": "renewal.approaching",
    }


def test_a_broker_dead_letter_reads_from_x_death() -> None:
    """A quorum delivery-limit dead letter shows the broker's reason, time and original routing key;
    its attempts are unknown (the quorum dead-letter queue reuses x-delivery-count to count its
    own reads, so that header says nothing about the worker queue's deliveries)."""
    dead = letter(BROKER_DEATH)
    assert (dead.reason, dead.origin, dead.attempts) == (
        "delivery_limit",
        ("renewals.events", "owner.changed"),
        None,
    )
    assert dead.failed_at == datetime(2026, 11, 20, 9, 5, tzinfo=UTC)
    assert "renewals.worker" in dead.detail


def test_a_retry_copy_dead_lettered_by_the_broker_keeps_its_true_origin() -> None:
    """x-original-* (set on the worker's retry copies) wins over x-death, which names the retry path."""
    headers = {
        **BROKER_DEATH,
        "x-original-exchange": "renewals.events",
        "x-original-routing-key": "renewal.approaching",
    }
    headers["x-death"] = [{**BROKER_DEATH["x-death"][0], "exchange": "", "routing-keys": ["renewals.worker"]}]
    assert letter(headers).origin == ("renewals.events", "renewal.approaching")


def test_replay_drops_the_failure_headers_keeps_the_rest_and_counts() -> None:
    """Every error, worker, origin and death header goes; other headers and all properties stay; x-replay-count + 1."""
    headers = {**WORKER_HEADERS, **BROKER_DEATH, "x-error-traceback": "Traceback ...", "x-last-death-reason": "x",
               "x-replay-count": 2, "x-trace": "t-1"}  # fmt: skip
    dead = letter(headers, message_id="evt-1", correlation_id="corr", app_id="billing")
    properties = dead.replay_properties()
    assert properties["headers"] == {"x-trace": "t-1", "x-replay-count": 3}
    assert {k: v for k, v in properties.items() if k != "headers"} == {
        "content_type": CLOUDEVENTS, "delivery_mode": 2, "message_id": "evt-1", "correlation_id": "corr", "app_id": "billing",
    }  # fmt: skip


def test_only_json_is_ever_deserialised() -> None:
    """A body under another content type is not parsed: its id comes from message_id, its body is kept as text."""
    body = json.dumps({"id": "from-body", "type": "RenewalApproaching"}).encode()
    dead = letter(
        WORKER_HEADERS, body, content_type="application/x-python-pickle", message_id="from-property"
    )
    assert (dead.id, dead.type, dead.document) == ("from-property", None, None)
    assert dead.as_record()["body"] == body.decode()


def test_a_binary_body_is_exported_as_base64() -> None:
    """Bytes that are not UTF-8 survive show and export as base64."""
    record = letter(WORKER_HEADERS, b"\xff\x00\xfe").as_record()
    assert (record["body_encoding"], record["body"]) == ("base64", "/wD+")
    json.dumps(record)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", datetime(2026, 11, 20, 8, 45, tzinfo=UTC)),
        ("2d", datetime(2026, 11, 18, 9, 0, tzinfo=UTC)),
        ("2026-11-19", datetime(2026, 11, 19, tzinfo=UTC)),
        ("2026-11-19T10:00:00+01:00", datetime(2026, 11, 19, 9, 0, tzinfo=UTC)),
        ("2026-11-19T10:00:00Z", datetime(2026, 11, 19, 10, 0, tzinfo=UTC)),
    ],
)
def test_since_and_until_take_times_and_ages(text: str, expected: datetime) -> None:
    """--since/--until accept ISO 8601 (UTC by default) and ages such as 15m or 2d."""
    assert parse_when(text, now=datetime(2026, 11, 20, 9, 0, tzinfo=UTC)) == expected


def test_parse_when_rejects_nonsense() -> None:
    """Anything else is a clear error, not a silent default."""
    with pytest.raises(ValueError, match="neither"):
        parse_when("yesterday")


def test_the_replay_guard_skips_often_replayed_letters_unless_forced() -> None:
    """At the limit a dead letter is skipped; --force or a higher limit replays it."""
    dead = letter({**WORKER_HEADERS, "x-replay-count": 3})
    assert plan(dead, ROUTES).action == "skip"
    assert plan(dead, ROUTES, force=True).action == "replay"
    assert plan(dead, ROUTES, max_replays=4).note == "renewals.events / renewal.approaching"


# --- hostile headers: reading never fails, printing never lets a control character out ----

ESC = "\x1b"
FORGED_NOTIFICATION = json.dumps(
    {"specversion": "1.0", "id": "forged-1", "source": "urn:x", "type": "NotificationRequested",
     "time": "2026-11-20T09:00:00+00:00", "data": {"to": [{"email": "victim@example.com"}]}}
).encode()  # fmt: skip


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        ("9999-12-31T23:59:59-23:59", "9999-12-31 23:59:59-23:59"),
        ("0001-01-01T00:00:00+14:00", "0001-01-01 00:00:00+14:00"),
    ],
)
def test_a_failure_time_utc_cannot_hold_keeps_its_offset_and_compares_exactly(stamp: str, shown: str) -> None:
    """x-failed-at at the edges of the calendar reads, prints with its own offset and compares with --since/--until."""
    dead = letter({**WORKER_HEADERS, "x-failed-at": stamp})
    failed_at = dead.failed_at
    assert failed_at is not None and failed_at.isoformat() == stamp
    assert row(dead.summary())["failed_at"] == shown
    late = stamp.startswith("9999")
    assert within(dead, since=parse_when("2026-01-01")) is late
    assert within(dead, until=parse_when("2026-01-01")) is not late
    assert within(dead, since=parse_when(stamp)) and not within(dead, until=parse_when(stamp))


def within(dead: DeadLetter, *, since: datetime | None = None, until: datetime | None = None) -> bool:
    """The store's own test of --since/--until: failure times compared as its microsecond keys."""
    failed_at = dead.failed_at
    assert failed_at is not None
    key = to_us(failed_at)
    return (since is None or key >= to_us(since)) and (until is None or key < to_us(until))


def test_parse_when_takes_the_edges_of_the_calendar_and_refuses_ages_before_year_one() -> None:
    """--since/--until never overflow: edge times keep their offset, ages reaching before year 1 are a clear error."""
    assert parse_when("9999-12-31T23:59:59-23:59").utcoffset() == -timedelta(hours=23, minutes=59)
    with pytest.raises(ValueError, match="before the year 1"):
        parse_when("99999999d")
    with pytest.raises(ValueError, match="before the year 1"):
        parse_when("9" * 5000 + "s")


AMQP_ODDITIES = {
    "x-failed-at": 2**70,  # a timestamp some clients hand over as a raw int, here out of range
    "x-attempts": Decimal("1.5"),
    "x-delivery-count": 2**64,
    "x-replay-count": -(10**5000),
    "x-error-reason": b"no_recipient",
    "x-error-detail": None,
    "x-original-exchange": ["renewals.events"],
    "x-original-routing-key": {"nested": {"deeper": [1, 2.5, float("nan"), b"\xff", None, True]}},
    "x-death": [
        {"count": 10**5000, "queue": b"\xff\xfe", "time": "yesterday", "exchange": 7, "routing-keys": "k"}
    ],
    "x-huge": 10**5000,
    "x-when": datetime(9999, 12, 31, 23, 59, tzinfo=timezone(-timedelta(hours=23, minutes=59))),
    "x-decimal": Decimal("-1E+999999"),
    "x-bytes": bytearray(b"\x00\x1b"),
    "x-infinite": float("inf"),
}


def test_header_values_of_any_amqp_type_read_as_sane_values_or_none() -> None:
    """Raw ints, Decimals, bytes, nested tables, lists, None, bools and huge ints: every property is total."""
    dead = letter(AMQP_ODDITIES)
    assert (dead.failed_at, dead.attempts, dead.replay_count, dead.origin) == (None, None, 0, None)
    assert dead.reason == "no_recipient"  # text sent as UTF-8 bytes still reads
    assert dead.detail == "dead-lettered by the broker from an unnamed queue (no_recipient, count ?)"
    record = dead.as_record()
    json.loads(json.dumps(record, allow_nan=False))  # strict JSON, whatever the headers held
    # an integer wider than AMQP's is cut at the boundary (worker/boundary.py), marked and digested
    assert record["headers"]["x-huge"].startswith(
        "(cut: an integer of 16610 bits, wider than AMQP's; sha256 "
    )
    assert record["headers"]["x-infinite"] == "inf"
    assert record["headers"]["x-when"] == "9999-12-31T23:59:00-23:59"
    assert plan(dead, ROUTES).to == (ROUTES.events_exchange, "renewal.approaching")  # from the body's type
    assert "x-huge" in described(kept(dead))


def test_a_timestamp_sent_as_seconds_reads_as_a_time() -> None:
    """An x-death time decoded as a plain int by another client is read as seconds since the epoch."""
    dead = letter({"x-death": [{**BROKER_DEATH["x-death"][0], "time": 1_795_000_000}]})
    assert dead.failed_at == datetime.fromtimestamp(1_795_000_000, UTC)


def test_control_characters_never_reach_the_terminal_in_list_or_show() -> None:
    """ESC, BEL, CR and NUL in ids, reasons, details and headers are printed as \\x1b-style escapes; spaces stay."""
    headers = {**WORKER_HEADERS, "x-error-reason": f"no_{ESC}[2Krecipient", "x-error-detail": "a\rb\x07 c\x00",
               f"x-evil{ESC}[8m": f"{ESC}]0;pwned\x07", "x-original-routing-key": f"renewal.approaching{ESC}[1A"}  # fmt: skip
    body = encode(renewal("c1", "p1", id=f"evt{ESC}[2J-1"))
    dead = letter(headers, body.replace(b"p1", b"p\\u001b1"))
    table = render([row(listed(kept(dead), ROUTES))], LIST_COLUMNS)
    shown = described(kept(dead))
    for text in (table, shown):
        assert not any(char in text for char in (ESC, "\x07", "\r", "\x00"))
    assert (
        "evt\\x1b[2J-1" in table and "no_\\x1b[2Krecipient" in table and "a b\\x07 c\\x00" in table
    )  # line breaks fold to spaces in a row
    assert "x-evil\\x1b[8m" in shown and "\\x1b]0;pwned\\x07" in shown and '"p\\u001b1"' in shown


def test_a_multi_line_header_stays_readable_in_show() -> None:
    """A traceback keeps its lines, each indented under its header, with other controls escaped."""
    dead = letter({**WORKER_HEADERS, "x-error-traceback": "Traceback:\n  line 1\r\n  Boom"})
    lines = described(kept(dead)).splitlines()
    start = next(i for i, line in enumerate(lines) if "x-error-traceback" in line)
    assert lines[start].endswith("Traceback:") and lines[start + 1].strip() == "line 1\\r"


@pytest.mark.parametrize("depth", [900, 5000])
def test_a_deeply_nested_body_is_shown_without_a_crash(depth: int) -> None:
    """A body nested as deep as json.loads reads is indented; a deeper one is no JSON to us and is shown as it came."""
    body = b'{"id": "deep-1", "type": "RenewalApproaching", "x": ' + b"[" * depth + b"]" * depth + b"}"
    dead = letter(WORKER_HEADERS, body)
    shown = described(kept(dead))
    assert shown.endswith("}") and (dead.id == "deep-1") is (depth == 900)


# --- where a replay goes: the input exchange by type, never where forged headers say -------


def test_a_replay_goes_to_the_input_exchange_under_the_events_type_key() -> None:
    """The destination is (events exchange, routing key of the body's type), whatever x-original-routing-key says."""
    dead = letter({**WORKER_HEADERS, "x-original-routing-key": "owner.changed"})
    assert plan(dead, ROUTES).to == (ROUTES.events_exchange, "renewal.approaching")
    assert plan(letter({}), ROUTES).to == (ROUTES.events_exchange, "renewal.approaching")  # no headers needed


def test_a_forged_notification_is_never_replayed_to_the_notifications_exchange() -> None:
    """A NotificationRequested body claiming x-original-exchange renewals.notifications is skipped, even with --to-original."""
    forged = {**WORKER_HEADERS, "x-original-exchange": ROUTES.notifications_exchange,
              "x-original-routing-key": "notification.requested.both"}  # fmt: skip
    dead = letter(forged, FORGED_NOTIFICATION)
    default = plan(dead, ROUTES)
    assert (default.action, default.to) == ("skip", None)
    assert (
        default.note == "type 'NotificationRequested' is not an event the worker consumes (see --to-original)"
    )
    trusting = plan(dead, replace(ROUTES, to_original=True))
    assert (trusting.action, trusting.to) == ("skip", None) and "the worker's output" in trusting.note


@pytest.mark.parametrize(
    "origin",
    [
        ("renewals.notifications", "notification.requested.both"),
        ("renewals.notifications.unrouted", ""),
        ("", "renewals.notifications.unrouted"),
        ("", "renewals.worker"),  # the default exchange reaches any queue: never, whatever the key
        ("", "renewals.worker.dlq"),
    ],
)
def test_no_way_into_the_output_is_ever_a_replay_destination(origin: tuple[str, str]) -> None:
    """The notifications exchange, its alternate exchange and the unrouted queue are refused with and without --to-original."""
    dead = letter({**WORKER_HEADERS, "x-original-exchange": origin[0], "x-original-routing-key": origin[1]})
    assert plan(dead, ROUTES).to is None
    assert plan(dead, replace(ROUTES, to_original=True)).to is None


def test_other_origins_and_types_are_replayed_only_with_to_original() -> None:
    """A non-input exchange in the headers, or a type the worker does not consume, needs --to-original."""
    elsewhere = letter(
        {**WORKER_HEADERS, "x-original-exchange": "billing.internal", "x-original-routing-key": "k"}
    )
    assert plan(elsewhere, ROUTES).note == (
        "came from exchange 'billing.internal', not the input exchange 'renewals.events' (see --to-original)"
    )
    assert plan(elsewhere, replace(ROUTES, to_original=True)).to == ("billing.internal", "k")
    mystery = letter(WORKER_HEADERS, encode(envelope("Mystery", {}, id="m-1")))
    assert plan(mystery, ROUTES).action == "skip"
    assert plan(mystery, replace(ROUTES, to_original=True)).to == ("renewals.events", "renewal.approaching")
    assert (
        plan(letter({}, b"not json"), ROUTES).note
        == "no event type in the body or the properties (see --to-original)"
    )


class FakePublisher:
    """The broker side of a replay, in memory: what was published where."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, bytes]] = []

    def republish(self, exchange: str, routing_key: str, body: bytes, properties: dict) -> None:
        self.published.append((exchange, routing_key, body))


def test_replay_publishes_where_the_plan_says_and_nowhere_else(tmp_path) -> None:
    """A replay operation takes each letter's destination from its plan: the forged notification
    stays new (skipped, with why in its history), the renewal goes to the input and is replayed."""
    forged = letter(
        {**WORKER_HEADERS, "x-original-exchange": ROUTES.notifications_exchange}, FORGED_NOTIFICATION
    )
    honest = letter({**WORKER_HEADERS, "x-original-exchange": ROUTES.events_exchange})
    store = open_store(f"sqlite:///{tmp_path / 'renewals.db'}")
    store.migrate()
    records = DeadLetterRecords(store)
    records.insert([drained(forged), drained(honest)])
    publisher = FakePublisher()
    operation = records.start_replay(LetterFilter(), actor="test", rate=None)
    ended, report = run(records, operation.id, publisher, ROUTES, actor="test")
    assert publisher.published == [(ROUTES.events_exchange, "renewal.approaching", honest.body)]
    assert [step.letter.body for step in report.skipped] == [forged.body]
    assert (ended.status, ended.replayed, ended.skipped) == ("finished", 1, 1)
    assert [x.event_type for x in records.page().letters] == ["NotificationRequested"]
    [skipped] = records.page().letters
    assert "not an event the worker consumes" in (records.history(skipped.id)[0].outcome or "")


@pytest.mark.parametrize("rate", [float("inf"), -1.0, 0.0])
def test_a_replay_whose_stored_rate_cannot_be_held_ends_cancelled_before_any_letter(
    tmp_path, rate: float
) -> None:
    """run() over an operation stored with an infinite, negative or zero rate raises InvalidRate,
    publishes nothing and leaves the operation cancelled (resumable), never running."""
    store = open_store(f"sqlite:///{tmp_path / 'renewals.db'}")
    store.migrate()
    records = DeadLetterRecords(store)
    records.insert([drained(letter(WORKER_HEADERS))])
    operation = records.start_replay(LetterFilter(), actor="test", rate=None)
    store.execute("UPDATE dead_letter_replays SET rate = ? WHERE id = ?", (rate, operation.id))
    publisher = FakePublisher()
    with pytest.raises(InvalidRate, match="letters per second above 0"):
        run(records, operation.id, publisher, ROUTES, actor="test")
    assert publisher.published == []
    assert records.operation(operation.id).status == "cancelled"
    assert [
        x.status for x in records.page(LetterFilter(statuses=frozenset({"new", "replayed"}))).letters
    ] == ["new"]


def drained(dead: DeadLetter) -> NewLetter:
    """The letter as the worker's drain records it."""
    return NewLetter(
        body=dead.body, properties=dict(dead.properties), headers=dict(dead.headers), reason=dead.reason,
        detail=dead.detail, failed_at=dead.failed_at, attempts=dead.attempts, replays=dead.replay_count,
        event_id=dead.id, event_type=dead.type, message_id=None, origin=dead.origin,
    )  # fmt: skip
