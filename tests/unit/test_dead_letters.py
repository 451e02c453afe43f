"""Reading dead letters and planning replays, from headers shaped as pika decodes them: no broker."""

import json
from datetime import UTC, datetime, timedelta

import pytest

from support.messages import encode, renewal
from worker.tools.dead_letters import DeadLetter, Selection, parse_when, plan

CLOUDEVENTS = "application/cloudevents+json"
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
    """A quorum delivery-limit dead letter shows the broker's reason, time and original routing key."""
    dead = letter(BROKER_DEATH)
    assert (dead.reason, dead.origin, dead.attempts) == (
        "delivery_limit",
        ("renewals.events", "owner.changed"),
        2,
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


def test_selection_combines_filters() -> None:
    """Reasons, types, ids and the failure-time window all have to match."""
    dead = letter(WORKER_HEADERS)
    at = dead.failed_at
    assert at is not None
    assert Selection(reasons=frozenset({"no_recipient", "too_large"})).matches(dead)
    assert not Selection(reasons=frozenset({"no_recipient"}), types=frozenset({"OwnerChanged"})).matches(dead)
    assert Selection(ids=frozenset({"evt-1"}), since=at, until=at + timedelta(milliseconds=1)).matches(dead)
    assert not Selection(until=at).matches(dead)
    assert not Selection(since=at).matches(letter({}))  # no failure time: outside every window


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
    assert plan(dead).action == "skip"
    assert plan(dead, force=True).action == "replay"
    assert plan(dead, max_replays=4).note == "renewals.events / renewal.approaching"
    assert plan(letter({})).action == "skip"  # nowhere known to send it
