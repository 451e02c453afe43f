"""`python -m bench.replay_rate`: how many dead letters a second a replay publishes, at the
default rate and unthrottled, on SQLite and on PostgreSQL, through the real broker (a fresh vhost
with the worker's topology; no worker consumes, so the copies wait in its queue).

The letters are put in the store as the drain records them; the replay is `replays.run` with the
broker layer's confirmed publisher, as `renewals dlq replay` runs it. It reports letters per
second for each store and rate, so a release with outcome tracking can be compared with one
without (issue 27: run it in both checkouts)."""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from bench.broker import DEFAULT_BROKER
from support.letters import spread
from support.services import fresh_vhost
from worker.broker.endpoints import from_settings
from worker.dead_letters import ReplayPublisher, Routes, run
from worker.dead_letters.model import LetterFilter
from worker.dead_letters.records import DeadLetterRecords
from worker.logs import get_logger
from worker.settings import Settings
from worker.store import open_store

DEFAULT_POSTGRES = "postgresql://127.0.0.1:5432/test"


def measure(amqp_url: str, store_url: str, letters: int, rate: float | None) -> dict[str, Any]:
    """One replay of `letters` fresh letters at `rate` (None: unthrottled): letters per second."""
    store = open_store(store_url)
    store.migrate()
    records = DeadLetterRecords(store)
    made = spread(letters)
    for start in range(0, letters, 1000):
        records.insert(made[start : start + 1000])
    settings = Settings(amqp_url=amqp_url, store_url=store_url)
    operation = records.start_replay(LetterFilter(), actor="bench", rate=rate)
    broker = from_settings(settings, heartbeat=0)
    started = time.perf_counter()
    with ReplayPublisher(broker, log=get_logger("bench.replay_rate")) as publisher:
        ended, _ = run(records, operation.id, publisher, Routes.of(settings), actor="bench")
    seconds = time.perf_counter() - started
    store.close()
    return {
        "rate": rate,
        "letters": ended.replayed,
        "seconds": round(seconds, 2),
        "per_second": round(ended.replayed / seconds, 1),
    }


@contextmanager
def postgres_schema(base: str) -> Iterator[str]:
    """A schema of its own on the PostgreSQL at `base`, dropped afterwards."""
    schema = f"bench_replays_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{base}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--throttled", type=int, default=500, help="letters at the default rate")
    parser.add_argument("--unthrottled", type=int, default=5000, help="letters at no rate limit")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="a PostgreSQL to make a schema in")
    args = parser.parse_args()
    default_rate = Settings().replay_rate
    results: dict[str, list[dict[str, Any]]] = {}
    with fresh_vhost(DEFAULT_BROKER, "bench-replays") as amqp_url, tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "RENEWALS_AMQP_URL": amqp_url}
        subprocess.run(
            [sys.executable, "-m", "worker", "topology", "--declare"],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        for name in ("sqlite", "postgresql"):
            results[name] = []
            for letters, rate in ((args.throttled, default_rate), (args.unthrottled, None)):
                if name == "sqlite":
                    url = f"sqlite:///{Path(folder) / f'{uuid.uuid4().hex}.db'}"
                    results[name].append(measure(amqp_url, url, letters, rate))
                else:
                    with postgres_schema(args.postgres) as url:
                        results[name].append(measure(amqp_url, url, letters, rate))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
