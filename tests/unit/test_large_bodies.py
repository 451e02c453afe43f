"""A body far over the size limit costs its own size in memory once, not three times: read from
its frames into one buffer, dead-lettered as too_large, and framed for publishing from views."""

import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from events import InvalidInput
from support.raw import content_header, deliver_method, properties
from tests.unit.test_service_parts import FakeConnection, publisher
from worker.broker.publisher import encoded_size
from worker.broker.wire import DeliveryReader
from worker.service.failures import FailurePolicy
from worker.service.intake import read
from worker.settings import Settings

MiB = 1024 * 1024
FRAME_ROOM = FakeConnection.frame_max - 8


class _Counting:
    bytes_recv = 0


def deliver_frames(reader: DeliveryReader, size: int, **values: Any) -> None:
    """basic.deliver, its content header and `size` bytes of body frames, each frame a new object
    handed over and dropped, as the socket reader does."""
    on_frame = reader.frame_handler(_Counting(), lambda *args: None)
    on_frame((1, 1, deliver_method(delivery_tag=7)))
    on_frame((2, 1, content_header(size, properties(**values))))
    for number, start in enumerate(range(0, size, FRAME_ROOM)):
        on_frame((3, 1, bytes([number % 251]) * min(FRAME_ROOM, size - start)))


def test_a_40_mb_body_is_read_dead_lettered_and_framed_within_its_own_size() -> None:
    """40 MiB arriving in 128 KiB frames, dead-lettered as too_large and laid out for the publisher: the peak of Python allocations stays under 1.25x the body (it was 3.0x: frames gathered then joined, and the publish joined twice more)."""
    size = 40 * MiB
    reader = DeliveryReader()
    connection = FakeConnection()
    connection.write = lambda data: None  # type: ignore[method-assign]  # a socket keeps nothing
    confirming = publisher(connection)
    policy = FailurePolicy(Settings(), encoded_size=encoded_size)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        deliver_frames(reader, size, content_type="application/json")
        delivery = reader.arrived.pop()
        with pytest.raises(InvalidInput) as caught:
            read(delivery, now=datetime.now(UTC), max_future=timedelta(minutes=5))
        failure = policy.handle(delivery, caught.value)
        del delivery
        sent = confirming.send([failure.outgoing])
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert caught.value.reason == "too_large" and failure.reason == "too_large" and not sent.unencodable
    assert peak < 1.25 * size, f"peak {peak / MiB:.1f} MiB for a body of {size / MiB:.0f} MiB"
