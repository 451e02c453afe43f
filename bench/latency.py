"""Latency at a steady offered rate: publish of an event to arrival of its notification.

One connection, two channels: events are published persistently with confirms (counted,
never waited for per message) on a fixed schedule, and notifications are consumed from the
observed queue; `correlation_id` (the event id) pairs them. Times are this process's clock.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass

import amqp  # type: ignore[import-untyped]  # py-amqp ships no type hints

from bench.broker import event_message
from bench.mix import Message
from support.amqp import Confirms, connect, drain
from support.client import NAMES


@dataclass(frozen=True, slots=True)
class LatencyRun:
    offered_per_s: float
    achieved_per_s: float
    notifications: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def measure(
    url: str,
    observed_queue: str,
    messages: Sequence[Message],
    rate: float,
    *,
    drain_s: float = 30.0,
) -> LatencyRun:
    """Offer `messages` at `rate` per second and time every notification that comes back."""
    connection = connect(url)
    try:
        confirms = Confirms(connection.channel())
        observing = connection.channel()
        sent: dict[str, float] = {}
        arrived: dict[str, float] = {}

        def on_notification(message: amqp.Message) -> None:
            arrived[message.properties.get("correlation_id", "")] = time.perf_counter()

        observing.basic_consume(observed_queue, callback=on_notification, no_ack=True)
        interval = 1.0 / rate
        began = time.perf_counter()
        for number, message in enumerate(messages):
            due = began + number * interval
            while (wait := due - time.perf_counter()) > 0:
                drain(connection, wait)
            sent[message.event_id] = time.perf_counter()
            confirms.publish(NAMES.events_exchange, message.routing_key, event_message(message))
        offered_s = time.perf_counter() - began
        expected = {m.event_id for m in messages if m.notifies}
        deadline = time.monotonic() + drain_s
        while not expected <= arrived.keys() and time.monotonic() < deadline:
            drain(connection, 0.05)
        missing = len(expected - arrived.keys())
        if missing:
            raise TimeoutError(f"{missing} of {len(expected)} notifications never arrived at {rate:g}/s")
        confirms.wait(connection)
    finally:
        connection.close()
    latencies = sorted((arrived[event_id] - sent[event_id]) * 1000 for event_id in expected)
    return LatencyRun(
        offered_per_s=rate,
        achieved_per_s=len(messages) / offered_s,
        notifications=len(latencies),
        p50_ms=percentile(latencies, 0.50),
        p99_ms=percentile(latencies, 0.99),
        max_ms=latencies[-1],
    )
