"""A long run of the crash scenarios: a stream of events while workers are killed (-9),
stopped (SIGTERM) and the broker is restarted; prints lost / duplicated / unexpected counts.

Runs on a spare RabbitMQ node of its own (started and removed here), so restarting it
disturbs nothing else. Usage: python -m scripts.chaos --help
"""

import argparse
import json
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pika

from support.client import Client, audit
from support.messages import contact, renewal
from support.spare_broker import SpareBroker, spare_broker
from support.worker_process import WorkerProcess

RETRIES = {"RENEWALS_RETRY_DELAYS": "[0.2, 0.4, 0.8]"}


class ResilientBilling(threading.Thread):
    """Publishes every event with confirms, reconnecting through broker restarts;
    an event whose confirm was lost is published again (same id: the inbox absorbs it)."""

    def __init__(self, url: str, events: list[dict[str, Any]], per_second: float) -> None:
        super().__init__(daemon=True)
        self.url, self.events, self.per_second = url, events, per_second
        self.reconnects = 0

    def run(self) -> None:
        started, index, client = time.monotonic(), 0, None
        while index < len(self.events):
            try:
                client = client or Client(self.url)
                client.publish([self.events[index]])
                index += 1
                ahead = started + index / self.per_second - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            except (pika.exceptions.AMQPError, OSError):
                client, self.reconnects = None, self.reconnects + 1
                time.sleep(0.5)


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    events = [
        renewal(f"chaos-{n}", None, decision_maker=contact("dora", "client.example"), id=f"chaos-evt-{n}")
        for n in range(args.events)
    ]
    expected = {e["id"] for e in events}
    counts = {"kills": 0, "sigterms": 0, "sigterm_bad_exits": 0, "broker_restarts": 0}
    with spare_broker() as broker, tempfile.TemporaryDirectory() as folder:
        worker = WorkerProcess(broker.url, Path(folder), env=RETRIES).start()
        client = Client(broker.url)
        client.channel.queue_declare("chaos.observer", durable=True)
        client.channel.queue_bind("chaos.observer", "renewals.notifications", "#")
        client.close()
        billing = ResilientBilling(broker.url, events, args.rate)
        billing.start()
        actions = ["kill"] * args.kills + ["sigterm"] * args.sigterms + ["broker"] * args.broker_restarts
        rng.shuffle(actions)
        pause = (len(events) / args.rate) / (len(actions) + 1)
        for action in actions:
            time.sleep(pause * rng.uniform(0.5, 1.5))
            worker = _disturb(action, worker, broker, counts, folder)
        billing.join()
        outputs = _collect(broker.url, expected, args.timeout)
        dead_letters = _count(broker.url, "renewals.worker.dlq")
        worker.stop()
    return {
        "events": len(events),
        **counts,
        "billing_reconnects": billing.reconnects,
        **audit(outputs, expected),
        "dead_letters": dead_letters,
    }


def _disturb(
    action: str, worker: WorkerProcess, broker: SpareBroker, counts: dict[str, int], folder: str
) -> WorkerProcess:
    if action == "broker":
        broker.restart_app(down_for=2.0)
        counts["broker_restarts"] += 1
        return worker
    if action == "kill":
        worker.kill()
        counts["kills"] += 1
    else:
        counts["sigterms"] += 1
        if worker.stop(signal.SIGTERM, timeout=35) != 0:
            counts["sigterm_bad_exits"] += 1
    return WorkerProcess(broker.url, Path(folder), env=RETRIES).start(wait=False)


def _collect(url: str, expected: set[str], timeout: float) -> list[Any]:
    outputs: list[Any] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client = Client(url)
            outputs += client.drain("chaos.observer")
            client.close()
        except (pika.exceptions.AMQPError, OSError):
            pass
        if expected <= {json.loads(body)["data"]["causation_id"] for _, _, body in outputs}:
            time.sleep(1.0)  # count late duplicates too
            client = Client(url)
            outputs += client.drain("chaos.observer")
            client.close()
            return outputs
        time.sleep(0.5)
    return outputs


def _count(url: str, queue: str) -> int:
    client = Client(url)
    try:
        return client.count(queue)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="events in the stream (default 20000)")
    parser.add_argument(
        "--rate", type=float, default=1500, help="events per second billing publishes (default 1500)"
    )
    parser.add_argument(
        "--kills", type=int, default=8, help="kill -9 of the worker, each followed by a restart"
    )
    parser.add_argument("--sigterms", type=int, default=3, help="graceful stops, each followed by a restart")
    parser.add_argument("--broker-restarts", type=int, default=2, help="rabbitmqctl stop_app/start_app")
    parser.add_argument(
        "--timeout", type=float, default=180, help="seconds to wait for the last notifications"
    )
    parser.add_argument("--seed", type=int, default=1)
    result = run(parser.parse_args())
    width = max(map(len, result))
    for key, value in result.items():
        print(f"{key.ljust(width)}  {value}")
    failed = (
        result["lost"] or result["unexpected"] or result["events_with_two_ids"] or result["sigterm_bad_exits"]
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
