"""`python -m bench.edits [N]`: edit and retry, timed on SQLite and on PostgreSQL through the
real broker (the first of the test matrix, a vhost of its own): N letters (default 100) each
edited in turn through the one use case the CLI, the console and the API run: checked against
the model (`draft_edit`), held, published with confirms, and resolved with its before and
after (`edit`). Prints the median and 95th percentile per edit, in milliseconds, and edits per
second, as JSON. No worker consumes the copies (a queue bound to the events exchange keeps them)."""

import json
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

import psycopg

from support.letters import new_letter
from support.services import brokers_under_test, postgres_base_url
from worker.broker.endpoints import from_settings
from worker.dead_letters import ReplayPublisher, actions
from worker.dead_letters.guardrails import EditPolicy
from worker.dead_letters.model import LetterFilter
from worker.dead_letters.records import DeadLetterRecords
from worker.logs import get_logger
from worker.settings import Settings
from worker.store import open_store


def broken(number: int) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": f"bench-edit-{number}",
        "source": "urn:bench",
        "type": "OwnerChanged",
        "time": "2026-11-20T09:00:00Z",
        "data": {"partner_id": f"p-{number}", "owner": "partner"},
    }


def measure(count: int, store_url: str, amqp_url: str) -> dict[str, Any]:
    """Edit `count` letters one after the other; the timings of each."""
    store = open_store(store_url)
    store.migrate()
    records = DeadLetterRecords(store)
    records.insert(
        [
            new_letter(
                event_id=f"bench-edit-{n}", event_type="OwnerChanged", body=json.dumps(broken(n)).encode()
            )
            for n in range(count)
        ]
    )
    settings = Settings(
        store_url=store_url, amqp_url=amqp_url, dlq_edit_enabled=True, dlq_edit_types=("OwnerChanged",)
    )
    policy = EditPolicy.of(settings)
    letters = [(letter.summary.id, letter.summary.event_id) for letter in records.letters(LetterFilter())]
    timings: list[float] = []
    started = time.perf_counter()
    with ReplayPublisher(from_settings(settings, heartbeat=0), log=get_logger("bench.edits")) as publisher:
        for letter_id, event_id in letters:
            number = int(str(event_id).rsplit("-", 1)[1])
            fixed = broken(number)
            fixed["data"] = {**fixed["data"], "partner_contact": {"email": f"p{number}@partner.example"}}
            began = time.perf_counter()
            draft = actions.draft_edit(records, policy, letter_id, json.dumps(fixed).encode())
            actions.edit(records, "bench", draft, publisher)
            timings.append((time.perf_counter() - began) * 1000)
    elapsed = time.perf_counter() - started
    store.close()
    ordered = sorted(timings)
    return {
        "edits": len(timings),
        "median_ms": round(statistics.median(ordered), 2),
        "p95_ms": round(ordered[int(len(ordered) * 0.95) - 1], 2),
        "edits_per_second": round(len(timings) / elapsed, 1),
    }


@contextmanager
def _postgres_schema() -> Iterator[str]:
    with postgres_base_url() as base:
        schema = f"bench_edits_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in base else "?"
        try:
            yield f"{base}{separator}options=-csearch_path%3D{schema}"
        finally:
            with psycopg.connect(base, autocommit=True) as connection:
                connection.execute(f"DROP SCHEMA {schema} CASCADE")


def main(count: int) -> dict[str, Any]:
    broker = brokers_under_test()[0]
    broker.ensure_running()
    results: dict[str, Any] = {"broker": broker.version}
    with broker.vhost("bench-edits") as amqp_url, TemporaryDirectory() as folder:
        import pika  # the independent client: an events exchange and a queue that keeps the copies

        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        channel = connection.channel()
        names = Settings()
        channel.exchange_declare(names.events_exchange, "topic", durable=True)
        channel.queue_declare("bench-edits-copies", durable=True)
        channel.queue_bind("bench-edits-copies", names.events_exchange, "#")
        results["sqlite"] = measure(count, f"sqlite:///{Path(folder) / 'edits.db'}", amqp_url)
        with _postgres_schema() as store_url:
            results["postgresql"] = measure(count, store_url, amqp_url)
        kept = channel.queue_declare("bench-edits-copies", passive=True).method.message_count
        connection.close()
    assert kept == 2 * count, f"{kept} copies confirmed, {2 * count} expected"
    return results


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100), indent=2))
