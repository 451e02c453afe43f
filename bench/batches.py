"""The worker's batches in-process, without a broker: `python -m bench.batches`.

`BatchProcessor` over a fresh SQLite store, fed the benchmark's mix (`bench.mix`) in batches of
`--batch-size`, each batch's notifications confirmed as the worker confirms them (deleted, and
their ledger rows stamped, by the next batch). No AMQP, no logging: what a batch costs the
worker's CPU, steadier than a run through the broker, for comparing two trees or settings in
one session. Prints, per run, µs of the process's CPU and of wall-clock time per event, and
the µs per event spent in COMMIT.

With `--wal-pages`, the WAL is never checkpointed during the run, then read frame by frame
against SQLite's `dbstat`: how many pages per event each table and index wrote.
"""

import argparse
import gc
import sqlite3
import statistics
import struct
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.mix import CONTENT_TYPE, Mix
from worker.broker.publisher import encoded_size
from worker.messaging import Delivery
from worker.running import collect_less
from worker.service.outbox import Outbox
from worker.service.processing import BatchProcessor
from worker.settings import Settings
from worker.store import open_store
from worker.store.connection import Direct


class TimedCommits(Direct):
    """Each statement straight to the driver, the time spent in COMMIT added up."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def execute(self, connection: Any, statement: str, params: Sequence[Any]) -> Any:
        if statement != "COMMIT":
            return super().execute(connection, statement, params)
        began = time.perf_counter()
        try:
            return super().execute(connection, statement, params)
        finally:
            self.seconds += time.perf_counter() - began


def run(folder: Path, events: int, batch_size: int, *, wal_pages: bool = False) -> dict[str, Any]:
    """One run on a new store in `folder`: its figures."""
    path = folder / f"batches-{time.monotonic_ns()}.db"
    commits = TimedCommits()
    store = open_store(f"sqlite:///{path}", runner=lambda _kind: commits)
    store.migrate()
    if wal_pages:  # the run's frames only, and all of them
        store.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        store.execute("PRAGMA wal_autocheckpoint=0")
    outbox = Outbox(store, grace_s=30, sweep_every_s=10)
    processor = BatchProcessor(Settings(), store, outbox=outbox, encoded_size=encoded_size)
    properties = {"content_type": CONTENT_TYPE, "delivery_mode": 2}
    deliveries = [
        Delivery(m.body, dict(properties), "renewals.events", m.routing_key, tag)
        for tag, m in enumerate(Mix().take(events), 1)
    ]
    thresholds = gc.get_threshold()
    collect_less()  # as the worker does once it is built; undone after the run
    try:
        cpu, wall = time.process_time(), time.perf_counter()
        for start in range(0, events, batch_size):
            results = processor.process(deliveries[start : start + batch_size])
            seqs = [result.outbox_seq for result in results if result.outbox_seq is not None]
            outbox.sent(seqs)
            outbox.confirmed(seqs)
        processor.flush()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    figures: dict[str, Any] = {
        "cpu_us_per_event": round(cpu * 1e6 / events, 1),
        "wall_us_per_event": round(wall * 1e6 / events, 1),
        "commit_us_per_event": round(commits.seconds * 1e6 / events, 1),
    }
    if wal_pages:
        figures["wal_pages_per_event"] = pages_by_structure(path, events)
    return figures


def pages_by_structure(path: Path, events: int) -> dict[str, float]:
    """The WAL's frames by the table or index their page belongs to, per event, largest first
    (a page freed since, such as a deleted outbox row's, counts as free): those of at least
    0.005 pages per event."""
    wal = Path(f"{path}-wal").read_bytes()
    page_size = struct.unpack(">I", wal[8:12])[0]
    frames = [
        struct.unpack(">I", wal[offset : offset + 4])[0]
        for offset in range(32, len(wal) - 24 - page_size + 1, 24 + page_size)
    ]
    with sqlite3.connect(path) as db:
        owner = dict(db.execute("SELECT pageno, name FROM dbstat"))
    counted = Counter(owner.get(page, "(free now)") for page in frames)
    return {
        name: round(count / events, 2) for name, count in counted.most_common() if count / events >= 0.005
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(prog="python -m bench.batches", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events per run (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=500, help="events per batch (default %(default)s)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs, each on a new store (default %(default)s)"
    )
    parser.add_argument(
        "--wal-pages", action="store_true", help="also count the WAL's pages per table and index"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-batches-") as folder:
        runs = [
            run(Path(folder), args.events, args.batch_size, wal_pages=args.wal_pages)
            for _ in range(args.repeat)
        ]
    for number, figures in enumerate(runs, 1):
        cpu, wall, commit = (figures[f"{kind}_us_per_event"] for kind in ("cpu", "wall", "commit"))
        print(f"run {number}: {cpu} us CPU per event, {wall} us wall, {commit} us in COMMIT")
        for name, pages in figures.get("wal_pages_per_event", {}).items():
            print(f"  {name:40} {pages:5.2f} WAL pages per event")
    median = statistics.median(figures["cpu_us_per_event"] for figures in runs)
    sizes = f"{args.events:,} events, batches of {args.batch_size}"
    print(f"median of {len(runs)}: {median} us CPU per event ({sizes})")
    return runs


if __name__ == "__main__":
    main()
