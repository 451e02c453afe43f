"""Hostile input as rules, no broker: the rows of issue 9's table whose rule lives in reading a
delivery, judging its envelope and making its retry and dead-letter copies. Each message goes
in as the broker's frames (support/raw.py), through the worker's frame reader, `read` and the
failure policy, and its copy out as the publisher's frames. tests/e2e/test_hostile_input.py
keeps what needs the real wire."""

import bz2
import gzip
import re
import tracemalloc
import zlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import cache
from struct import unpack_from
from typing import Any

import pytest
from amqp.serialization import decode_properties_basic

from events import InvalidInput
from support.messages import contact, encode, renewal
from support.raw import deliver_frames, properties, table
from tests.fake_wire import Reading
from worker.broker.publisher import encoded_size, frames
from worker.messaging import MAX_COPIED_HEADER_BYTES, Delivery, Outgoing
from worker.service.failures import Failure, FailurePolicy
from worker.service.intake import read
from worker.settings import Settings

SETTINGS = Settings()
POLICY = FailurePolicy(SETTINGS, encoded_size=encoded_size)
FRAME_MAX = 131072  # RabbitMQ's default frame_max, which the worker takes
EVENTS = SETTINGS.events_exchange
JSON = "application/cloudevents+json"
DORA = contact("dora", "client.example")
MiB = 1024 * 1024


def arrived(body: bytes, **values: Any) -> Delivery:
    """The delivery the worker reads from the broker's frames of this message."""
    (delivery,) = Reading().read_bytes(deliver_frames(body, properties(**values), frame_max=FRAME_MAX))
    return delivery


def judged(delivery: Delivery) -> InvalidInput:
    with pytest.raises(InvalidInput) as refused:
        read(delivery, now=datetime.now(UTC), max_future=timedelta(minutes=5))
    return refused.value


def sent(message: Outgoing) -> tuple[dict[str, Any], bytes]:
    """The copy laid out as the publisher's frames (each within frame_max) and read back as a
    broker would: its properties (py-amqp's decoder) and body."""
    wire = b"".join(frames(1, FRAME_MAX, message))
    offset, payloads = 0, []
    while offset < len(wire):
        (size,) = unpack_from(">I", wire, offset + 3)
        assert size <= FRAME_MAX - 8 and wire[offset + 7 + size] == 0xCE
        payloads.append(wire[offset + 7 : offset + 7 + size])
        offset += 8 + size
    _, header, *body = payloads
    return decode_properties_basic(header, 12)[0], b"".join(body)


# Row 2 ---------------------------------------------------------------------------------------

ENCODINGS = [
    ({"compression": "bzip2"}, None, "compression header 'bzip2'"),
    ({"compression": "application/x-bz2"}, None, "compression header 'application/x-bz2'"),
    ({"compression": "zlib"}, None, "compression header 'zlib'"),
    ({"compression": "application/x-gzip"}, None, "compression header 'application/x-gzip'"),
    (None, "gzip", "content encoding 'gzip'"),
    (None, "deflate", "content encoding 'deflate'"),
    ({"compression": "bzip2"}, "bzip2", "content encoding 'bzip2'"),
]


@cache
def bomb(compress: Callable[[bytes, int], bytes]) -> bytes:
    """20 MiB of zeros, compressed (bzip2 to 50 bytes, gzip and zlib to 20 KB)."""
    return compress(b"\0" * (20 * MiB), 9)


@pytest.mark.parametrize(("headers", "encoding", "detail"), ENCODINGS)
@pytest.mark.parametrize(
    "compress", [bz2.compress, gzip.compress, zlib.compress], ids=["bzip2", "gzip", "zlib"]
)
def test_row2_a_compressed_body_is_dead_lettered_untouched_and_never_inflated(
    headers: dict[str, str] | None, encoding: str | None, detail: str, compress: Callable[[bytes, int], bytes]
) -> None:
    """A 20 MiB decompression bomb under a compression header or a content encoding: unsupported_content_encoding, its copy carries the very bytes that came, and reading, judging and framing the copy never allocates anything near what it would inflate to."""
    body = bomb(compress)
    tracemalloc.start()
    try:
        delivery = arrived(body, content_type="application/json", application_headers=headers,
                           content_encoding=encoding)  # fmt: skip
        problem = judged(delivery)
        failure = POLICY.handle(delivery, problem)
        copy = sent(failure.outgoing)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (problem.reason, problem.detail) == ("unsupported_content_encoding", detail)
    assert failure.reason == "unsupported_content_encoding" and copy[1] == body
    assert peak < 4 * len(body) + MiB, f"{peak / MiB:.1f} MiB for a {len(body)}-byte bomb"


@pytest.mark.parametrize("encoding", ["", "identity", "utf-8", "UTF8", " Identity "])
def test_row2_an_identity_content_encoding_is_read_as_it_is(encoding: str) -> None:
    """The encodings that leave the body as it is (kombu sets utf-8) do not stand in the event's way."""
    event = renewal("r2-c", None, decision_maker=DORA, id="r2-identity")
    assert read(arrived(encode(event), content_type=JSON, content_encoding=encoding),
                now=datetime.now(UTC), max_future=timedelta(minutes=5)).id == "r2-identity"  # fmt: skip


# Rows 3 and 8 --------------------------------------------------------------------------------

UPSTREAM = {"user_id": "renewals-hostile", "delivery_mode": 1, "expiration": "60000", "cluster_id": "c9",
            "priority": 3, "correlation_id": "r8-corr", "message_id": "m-1", "app_id": "upstream"}  # fmt: skip


def copied(failure: Failure) -> dict[str, Any]:
    properties, _ = sent(failure.outgoing)
    return {name: value for name, value in properties.items() if name != "application_headers"}


def test_rows3_and_8_every_copy_leaves_out_user_id_and_expiration_and_is_persistent() -> None:
    """A message naming another user, published transient with an expiration: its retry copies and its dead letter (invalid or retries exhausted) carry no user_id (the broker refuses another user's from the worker), no expiration, no cluster_id, are persistent, and keep the other properties."""
    kept = {
        "delivery_mode": 2,
        "priority": 3,
        "correlation_id": "r8-corr",
        "message_id": "m-1",
        "app_id": "upstream",
    }
    bad = arrived(b"{not json", content_type="application/json", **UPSTREAM)
    assert copied(POLICY.handle(bad, judged(bad))) == {"content_type": "application/json", **kept}
    delivery = arrived(encode(renewal("doomed-r3", None, decision_maker=DORA, id="r3-doomed")),
                       content_type=JSON, **UPSTREAM)  # fmt: skip
    for attempt in range(1, SETTINGS.max_attempts + 1):
        failure = POLICY.handle(delivery, RuntimeError("a bug"))
        assert copied(failure) == {"content_type": JSON, **kept}, attempt
        # The copy comes back from its delay tier through the default exchange.
        delivery = Delivery(failure.outgoing.body, sent(failure.outgoing)[0], "", SETTINGS.queue, attempt + 1)
    headers = failure.outgoing.properties["application_headers"]
    assert (failure.reason, headers["x-attempts"]) == ("retries_exhausted", SETTINGS.max_attempts)
    assert (headers["x-original-exchange"], headers["x-original-routing-key"]) == (
        EVENTS,
        "renewal.approaching",
    )


# Row 4 ---------------------------------------------------------------------------------------


def near_the_frame_limit(*, entry: int) -> bytes:
    """A header table that, with a few short properties, fills a content-header frame to within
    a hundred bytes of the frame limit: entries of `entry` bytes, the last one smaller."""
    room = FRAME_MAX - 8 - 12 - 2 - 60 - 100  # frame overhead, class/weight/size, flags, other properties
    entries: dict[str | bytes, str] = {}
    size = 4
    while size + 6 + 5 + 5 < room:
        name = f"h{len(entries):04}"
        value_size = min(entry, room - size - 6 - 5)
        entries[name] = "x" * value_size
        size += 1 + len(name) + 1 + 4 + value_size
    encoded = table(entries)
    assert FRAME_MAX - 400 < len(encoded) + 8 + 12 + 60 < FRAME_MAX, len(encoded)
    return encoded


@pytest.mark.parametrize("entry", [1000, 200_000], ids=["many-small", "one-large"])
@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"{not json", "invalid_json"), (encode(renewal("r4-c", "p-nobody", id="r4-lonely")), None)],
    ids=["invalid", "retried"],
)
def test_row4_a_header_table_filling_a_frame_is_copied_within_bounds(
    entry: int, body: bytes, reason: str | None
) -> None:
    """Headers filling a content-header frame (about 128 KB, many small or one large): read whole; the copy keeps at most 16 KiB of them, names the rest in x-headers-dropped, and fits in one frame with the worker's own headers."""
    headers = near_the_frame_limit(entry=entry)
    delivery = arrived(body, content_type=JSON, delivery_mode=2, message_id="r4", application_headers=headers)
    assert delivery.problem is None and len(delivery.headers) >= 1
    failure = POLICY.handle(delivery, judged(delivery) if reason else RuntimeError("a bug"))
    copy_headers = sent(failure.outgoing)[0]["application_headers"]
    kept = {name: value for name, value in copy_headers.items() if re.fullmatch(r"h\d{4}", name)}
    assert len(table(kept)) - 4 <= MAX_COPIED_HEADER_BYTES
    dropped = set(copy_headers["x-headers-dropped"].split(", "))
    assert dropped and not dropped & set(kept) and len(kept) + len(dropped) == len(delivery.headers)


def test_row4_a_good_event_with_headers_filling_a_frame_is_read() -> None:
    """The same headers on a good event stand in nobody's way: the event is read."""
    event = renewal("r4-fine-c", None, decision_maker=DORA, id="r4-fine")
    delivery = arrived(encode(event), content_type=JSON, application_headers=near_the_frame_limit(entry=1000))
    assert read(delivery, now=datetime.now(UTC), max_future=timedelta(minutes=5)).id == "r4-fine"


# Row 6 ---------------------------------------------------------------------------------------

FORGED_HEADERS = {
    "x-original-exchange": SETTINGS.notifications_exchange,
    "x-original-routing-key": "notification.requested.decision_maker",
    "x-error-reason": "no_recipient",
    "x-attempts": 99,
    "x-failed-at": "2026-01-01T00:00:00.000+00:00",
}


def test_row6_forged_origin_headers_give_way_to_the_origin_the_broker_saw() -> None:
    """An event published with x-original-exchange: renewals.notifications, x-attempts 99 and its own x-error-reason: its dead letter names the exchange and routing key the broker delivered it from, attempt 1 and the worker's reason."""
    delivery = arrived(b"{not json", content_type="application/json", application_headers=FORGED_HEADERS)
    headers = sent(POLICY.handle(delivery, judged(delivery)).outgoing)[0]["application_headers"]
    assert (headers["x-original-exchange"], headers["x-original-routing-key"]) == (
        EVENTS,
        "renewal.approaching",
    )
    assert (headers["x-attempts"], headers["x-error-reason"]) == (1, "invalid_json")
    assert headers["x-failed-at"] != FORGED_HEADERS["x-failed-at"]
