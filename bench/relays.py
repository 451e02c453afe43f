"""The two reference relays: what the broker carries with the worker's guarantees and no domain.

Both consume a pre-filled durable quorum queue with manual acks and republish every message
persistently, with publisher confirms and `mandatory`, to a topic exchange bound to another
durable quorum queue. The *ceiling* publishes a batch, waits once for its confirms and acks
the batch with one multiple-ack; the *naive* relay waits for each confirm and acks each
message. Same prefetch and batch bounds as the worker's defaults.
"""

import argparse
import os
import time
from dataclasses import dataclass
from typing import Any

import amqp  # type: ignore[import-untyped]  # py-amqp ships no type hints

from events import notification_routing_key
from support.amqp import Confirms, connect, drain

OUTPUT_CONTENT_TYPE = "application/cloudevents+json"
BOTH = notification_routing_key("both")


@dataclass(frozen=True, slots=True)
class RelayRun:
    events: int
    seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


def relay(
    url: str,
    queue: str,
    exchange: str,
    count: int,
    *,
    batched: bool,
    output_bytes: int,
    prefetch: int = 1000,
    batch_size: int = 500,
    idle_s: float = 0.002,
    max_wait_s: float = 0.010,
) -> RelayRun:
    """Move `count` messages from `queue` to `exchange`; timed from consume to the last ack."""
    connection = connect(url)
    try:
        consuming = connection.channel()
        consuming.basic_qos(0, prefetch, False)
        confirms = Confirms(connection.channel())
        arrived: list[amqp.Message] = []
        started = time.perf_counter()
        consuming.basic_consume(queue, callback=arrived.append, no_ack=False)
        done = 0
        while done < count:
            if not arrived and not drain(connection, 10.0):
                raise TimeoutError(f"relay starved after {done} of {count} messages")
            if batched:
                batch = _collect(connection, arrived, batch_size, idle_s, max_wait_s)
                for message in batch:
                    confirms.publish(exchange, BOTH, _output(message, output_bytes))
                confirms.wait(connection)
                consuming.basic_ack(batch[-1].delivery_tag, multiple=True)
            else:
                batch = [arrived.pop(0)]
                confirms.publish(exchange, BOTH, _output(batch[0], output_bytes))
                confirms.wait(connection)
                consuming.basic_ack(batch[0].delivery_tag)
            done += len(batch)
        return RelayRun(done, time.perf_counter() - started)
    finally:
        connection.close()


def _collect(
    connection: amqp.Connection,
    arrived: list[amqp.Message],
    size: int,
    idle_s: float,
    max_wait_s: float,
) -> list[amqp.Message]:
    """What the worker does: take what follows until a short lull or a full batch."""
    deadline = time.monotonic() + max_wait_s
    while len(arrived) < size and time.monotonic() < deadline:
        if not drain(connection, idle_s):
            break
    batch = arrived[:size]
    del arrived[:size]
    return batch


def _output(message: amqp.Message, size: int) -> amqp.Message:
    """The event's body, padded with JSON whitespace to the size of the worker's notifications."""
    body = message.body
    if len(body) < size:
        body = body + b" " * (size - len(body))
    event_id = message.properties.get("message_id", "")
    return amqp.Message(
        body,
        content_type=OUTPUT_CONTENT_TYPE,
        delivery_mode=2,
        message_id=event_id,
        correlation_id=event_id,
        type="NotificationRequested",
        app_id="renewals-bench-relay",
    )


def worker_batching(worker_env: dict[str, str]) -> dict[str, Any]:
    """The worker's prefetch and batch bounds (its defaults, or what the environment sets), so the
    relays batch exactly as the worker is configured to."""
    from worker.settings import Settings

    def value(name: str) -> float:
        variable = f"RENEWALS_{name.upper()}"
        return float(worker_env.get(variable, os.environ.get(variable, Settings.model_fields[name].default)))

    return {
        "prefetch": int(value("prefetch")),
        "batch_size": int(value("batch_size")),
        "idle_s": value("batch_idle_ms") / 1000,
        "max_wait_s": value("batch_max_wait_ms") / 1000,
    }


def main() -> None:
    """A relay in a process of its own, for the latency reference: `python -m bench.relays`."""
    parser = argparse.ArgumentParser(prog="python -m bench.relays", description=main.__doc__)
    parser.add_argument("url")
    parser.add_argument("queue")
    parser.add_argument("exchange")
    parser.add_argument("count", type=int)
    parser.add_argument("--naive", action="store_true", help="wait for each confirm, ack each message")
    parser.add_argument("--output-bytes", type=int, default=0)
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--idle-s", type=float, default=0.002)
    parser.add_argument("--max-wait-s", type=float, default=0.010)
    o = parser.parse_args()
    run = relay(
        o.url,
        o.queue,
        o.exchange,
        o.count,
        batched=not o.naive,
        output_bytes=o.output_bytes,
        prefetch=o.prefetch,
        batch_size=o.batch_size,
        idle_s=o.idle_s,
        max_wait_s=o.max_wait_s,
    )
    print(f"{run.events} events in {run.seconds:.3f} s")


if __name__ == "__main__":
    main()
