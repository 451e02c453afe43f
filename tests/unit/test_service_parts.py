"""Pieces of the running service that only end-to-end tests reached before: splitting a batch
around redelivered messages, the publisher's confirm bookkeeping, choosing a retry tier."""

import hashlib
from typing import Any

import pytest

from support.raw import publish_frames
from worker.broker.publisher import ConfirmingPublisher, encode_properties, encoded_size
from worker.messaging import Delivery, Outgoing, PublishFailed, Unencodable
from worker.service.failures import FailurePolicy
from worker.service.session import _chunks
from worker.settings import Settings


def delivery(tag: int, redelivered: bool = False, **headers: Any) -> Delivery:
    return Delivery(b"{}", {"application_headers": headers}, "", "renewals.worker", tag, redelivered)


def test_redelivered_messages_are_handled_alone_and_their_neighbours_together() -> None:
    """Fresh deliveries stay in runs; each redelivered one is a chunk of its own, in order."""
    batch = [delivery(1), delivery(2), delivery(3, True), delivery(4), delivery(5, True), delivery(6, True)]
    assert [[d.delivery_tag for d in chunk] for chunk in _chunks(batch)] == [[1, 2], [3], [4], [5], [6]]
    assert [[d.delivery_tag for d in chunk] for chunk in _chunks(batch[:2])] == [[1, 2]]
    assert _chunks([]) == []


class FakeConnection:
    """What ConfirmingPublisher needs of a py-amqp connection; confirms are scripted."""

    frame_max = 131072

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.bytes_sent = 0
        self.transport = self
        self.confirms: list[tuple[str, int, bool]] = []
        self.channel_events: dict[str, set[Any]] = {
            "basic_ack": set(),
            "basic_nack": set(),
            "basic_return": set(),
        }

    def channel(self) -> "FakeConnection":
        self.channel_id = 1
        self.events = self.channel_events
        return self

    def confirm_select(self) -> None:
        pass

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def drain_events(self, timeout: float) -> None:
        if not self.confirms:
            raise TimeoutError
        kind, tag, multiple = self.confirms.pop(0)
        for callback in self.events[kind]:
            callback(tag, multiple)


def publisher(connection: FakeConnection, timeout: float = 0.05) -> ConfirmingPublisher:
    return ConfirmingPublisher(connection, confirm_timeout=timeout, log=None)  # type: ignore[arg-type]


MESSAGE = Outgoing("x", "k", b"body", {"delivery_mode": 2})


def test_a_batch_is_written_in_one_go_and_confirmed_by_a_multiple_ack() -> None:
    """send() writes all frames with one call and returns the last tag; one multiple ack settles them."""
    connection = FakeConnection()
    confirming = publisher(connection)
    assert confirming.send([MESSAGE] * 3).tag == 3 and len(connection.written) == 1
    assert confirming.send([MESSAGE] * 2).tag == 5
    connection.confirms = [("basic_ack", 3, True)]
    confirming.wait_for(3)
    connection.confirms = [("basic_ack", 5, False), ("basic_ack", 4, False)]
    confirming.wait_for(5)


def test_waiting_for_a_tag_does_not_need_later_confirms() -> None:
    """Acks out of order: wait_for(2) returns once 1 and 2 are in, while 3 is still out."""
    connection = FakeConnection()
    confirming = publisher(connection)
    confirming.send([MESSAGE] * 3)
    connection.confirms = [("basic_ack", 2, False), ("basic_ack", 1, False)]
    confirming.wait_for(2)
    with pytest.raises(PublishFailed, match="not confirmed"):
        confirming.wait_for(3)


def test_a_nack_fails_the_wait_and_the_next_wait_starts_clean() -> None:
    """A nacked publish raises PublishFailed once; later publishes are judged on their own."""
    connection = FakeConnection()
    confirming = publisher(connection)
    confirming.send([MESSAGE] * 2)
    connection.confirms = [("basic_nack", 1, False), ("basic_ack", 2, False)]
    with pytest.raises(PublishFailed, match="nacked publish 1"):
        confirming.wait_for(2)
    tag = confirming.send([MESSAGE]).tag
    connection.confirms += [("basic_ack", tag, False)]
    confirming.wait_for(tag)


LONG_ID = "€" * 86  # 86 characters, 258 bytes
UNENCODABLE = [
    Outgoing("x", "k", b"body", {"correlation_id": LONG_ID}),
    Outgoing("x", "k" * 256, b"body", {}),
    Outgoing("x" * 300, "k", b"body", {}),
    Outgoing("x", "k", b"body", {"application_headers": {"h": object()}}),
    Outgoing("x", "k", b"body", {"priority": 256}),
    Outgoing("x", "k", b"body", {"timestamp": 2**64}),
    Outgoing("x", "k", b"body", {"application_headers": {"h": "v" * 200_000}}),  # no frame holds it
]


def test_a_message_that_cannot_be_encoded_is_left_out_alone_and_named() -> None:
    """Between good messages, each unencodable one (a short string over 255 bytes, a header AMQP has no type for, an octet over 255, properties larger than a frame) is reported by position with the reason, is not written, takes no tag, and the others go out numbered 1..n."""
    connection = FakeConnection()
    confirming = publisher(connection)
    batch = [MESSAGE]
    for bad in UNENCODABLE:
        batch += [bad, MESSAGE]
    sent = confirming.send(batch)
    assert sent.tag == len(UNENCODABLE) + 1
    assert sorted(sent.unencodable) == [2 * n + 1 for n in range(len(UNENCODABLE))]
    assert "correlation_id is 258 bytes, more than an AMQP short string's 255" in sent.unencodable[1]
    assert (
        "routing key is 256 bytes" in sent.unencodable[3] and "exchange is 300 bytes" in sent.unencodable[5]
    )
    assert b"".join(connection.written).count(b"body") == len(UNENCODABLE) + 1
    connection.confirms = [("basic_ack", sent.tag, True)]
    confirming.wait_for(sent.tag)


def test_publish_refuses_a_batch_with_an_unencodable_message_before_writing_anything() -> None:
    """publish() (the tools' way) raises Unencodable naming the value, and writes nothing."""
    connection = FakeConnection()
    with pytest.raises(Unencodable, match="correlation_id is 258 bytes"):
        publisher(connection).publish([MESSAGE, UNENCODABLE[0]])
    assert connection.written == []


def test_a_large_body_is_written_from_views_without_a_copy_of_its_size() -> None:
    """A 40 MB body goes out in writes of about a megabyte, framed exactly, and laying it out allocates a small fraction of its size (tracemalloc)."""
    import tracemalloc

    body = bytes(range(256)) * (40 * 1024 * 1024 // 256)
    connection = FakeConnection()
    written, sizes = hashlib.sha256(), []

    def write(data: bytes) -> None:  # keeps nothing: a socket does not either
        written.update(data)
        sizes.append(len(data))

    connection.write = write  # type: ignore[method-assign]
    confirming = publisher(connection)
    tracemalloc.start()
    try:
        confirming.send([Outgoing("x", "k", body, {"delivery_mode": 2})])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert max(sizes) < 2 * 1024 * 1024 and len(sizes) >= 40
    expected = publish_frames(
        1, FakeConnection.frame_max, "x", "k", body, encode_properties({"delivery_mode": 2})
    )
    assert written.digest() == hashlib.sha256(expected).digest()  # an independent framer (support/raw.py)
    # Each write is joined from views, about a megabyte at a time: never the body's size again
    # (it was twice the body before: 80 MB for 40).
    assert peak < 3 * 1024 * 1024, f"peak {peak} bytes for a body of {len(body)}"


@pytest.mark.parametrize(
    ("failed_before", "tier"), [(0, "1000ms"), (1, "10000ms"), (2, "60000ms"), (3, "60000ms")]
)
def test_each_failure_goes_to_the_next_delay_tier_and_the_last_tier_repeats(
    failed_before: int, tier: str
) -> None:
    """A delivery that failed n times before goes to the (n+1)-th delay queue, the last one repeating."""
    policy = FailurePolicy(Settings(max_attempts=10), encoded_size=encoded_size)
    failure = policy.handle(delivery(1, **{"x-attempts": failed_before}), RuntimeError("boom"))
    assert failure.outcome == "message.retry_scheduled"
    assert failure.outgoing.routing_key == f"renewals.worker.retry.{tier}"
    assert failure.outgoing.properties["application_headers"]["x-attempts"] == failed_before + 1


def test_upstream_cannot_skip_the_retries_with_a_forged_attempt_count() -> None:
    """x-attempts on a message from the input exchange is ignored: its first failure is attempt 1."""
    fresh = Delivery(
        b"{}", {"application_headers": {"x-attempts": 99}}, "renewals.events", "renewal.approaching", 1
    )
    failure = FailurePolicy(Settings(), encoded_size=encoded_size).handle(fresh, RuntimeError("boom"))
    assert failure.outcome == "message.retry_scheduled"
    assert failure.outgoing.properties["application_headers"]["x-attempts"] == 1


def test_a_bare_copy_keeps_the_body_and_only_the_worker_s_own_headers() -> None:
    """The fallback for a copy that cannot be encoded: body, persistent, the worker's headers (x-error-*, x-original-*, x-attempts...), nothing of the original's properties; and it encodes."""
    from worker.broker.publisher import frames
    from worker.messaging import bare_copy

    copy = Outgoing(
        "",
        "renewals.worker.dlq",
        b"body",
        {
            "correlation_id": LONG_ID,
            "message_id": "m",
            "application_headers": {"x-error-reason": "too_large", "x-attempts": 1, "x-tenant": "eu"},
        },
    )
    with pytest.raises(Unencodable):
        frames(1, FakeConnection.frame_max, copy)
    bare = bare_copy(copy)
    assert (bare.exchange, bare.routing_key, bare.body) == ("", "renewals.worker.dlq", b"body")
    assert bare.properties == {
        "delivery_mode": 2,
        "application_headers": {"x-error-reason": "too_large", "x-attempts": 1},
    }
    assert frames(1, FakeConnection.frame_max, bare)
