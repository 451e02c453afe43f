"""The worker's batches in-process, without a broker: `python -m bench.batches`.

`BatchProcessor` over a fresh SQLite store, fed the benchmark's mix (`bench.mix`) in batches of
`--batch-size`, each batch's notifications confirmed as the worker confirms them (deleted, and
their ledger rows stamped, by the next batch). No AMQP, no logging: what a batch costs the
worker's CPU, steadier than a run through the broker, for comparing two trees or settings in
one session. Prints, per run, µs of the process's CPU and of wall-clock time per event, and
the µs per event spent in COMMIT and in the garbage collector.

With `--wal-pages`, the WAL is never checkpointed during the run, then read frame by frame
against SQLite's `dbstat`: how many pages per event each table and index wrote.

With `--against REF`, it compares this tree with the commit REF on a noisy machine: REF is
checked out into a temporary worktree, and the two trees run in turns (this, REF, REF, this...),
each run in a process of its own; it prints each tree's median and fastest run, and the median
of the rounds' ratios (this over REF) with their spread. A difference inside the spread is not
one this machine can tell.

With `--instructions`, each run goes under valgrind's callgrind and reports the instructions
per event of the batches alone: the same count run after run, whatever the machine's neighbours
do (user space only: not the kernel's writes and syncs). With `--against`, one round is enough.
"""

import argparse
import gc
import os
import re
import shutil
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.mix import CONTENT_TYPE, Mix
from bench.profiling import ROOT
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


class CollectorTime:
    """A `gc.callbacks` entry: the seconds the garbage collector ran, added up. Steadier than
    CPU time on a shared machine: it depends on what the batches allocate, not on neighbours."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._began = 0.0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._began


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
    collector = CollectorTime()
    gc.callbacks.append(collector)

    def batches() -> None:
        for start in range(0, events, batch_size):
            results = processor.process(deliveries[start : start + batch_size])
            seqs = [result.outbox_seq for result in results if result.outbox_seq is not None]
            outbox.sent(seqs)
            outbox.confirmed(seqs)
        processor.flush()

    try:
        cpu, wall = time.process_time(), time.perf_counter()
        sys.call_tracing(batches, ())  # what callgrind counts (`--instructions`): this call alone
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        gc.callbacks.remove(collector)
        gc.unfreeze()
        gc.set_threshold(*thresholds)
    figures: dict[str, Any] = {
        "cpu_us_per_event": round(cpu * 1e6 / events, 1),
        "wall_us_per_event": round(wall * 1e6 / events, 1),
        "commit_us_per_event": round(commits.seconds * 1e6 / events, 1),
        "gc_us_per_event": round(collector.seconds * 1e6 / events, 1),
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


def _one_run(
    tree: Path, events: int, batch_size: int, *, under: Sequence[str] = (), seed: str | None = None
) -> "subprocess.CompletedProcess[str]":
    """One run of the batches bench of the tree at `tree`, in a process of its own (its modules,
    not this one's), under the command `under` if given, with the hash seed `seed` if given."""
    command = [*under, sys.executable, "-m", "bench.batches", "--repeat", "1"]
    command += ["--events", str(events), "--batch-size", str(batch_size)]
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    if seed is not None:
        environment["PYTHONHASHSEED"] = seed
    return subprocess.run(command, cwd=tree, env=environment, capture_output=True, text=True)


def _last_said(out: "subprocess.CompletedProcess[str]") -> str:
    return (out.stderr.strip() or out.stdout.strip() or "nothing").splitlines()[-1]


def cpu_of_one_run(tree: Path, events: int, batch_size: int) -> float:
    """µs of CPU per event of one run of the batches bench of the tree at `tree`."""
    out = _one_run(tree, events, batch_size)
    found = re.search(r"^run 1: ([0-9.]+) us CPU per event", out.stdout, re.MULTILINE)
    if out.returncode != 0 or found is None:
        raise SystemExit(f"error: bench.batches of the tree at {tree} gave no figure: {_last_said(out)}")
    return float(found.group(1))


def instructions_of_one_run(tree: Path, events: int, batch_size: int) -> float:
    """Instructions per event of one run of the batches bench of the tree at `tree`, counted by
    callgrind over the batches alone (`run` makes them inside `sys.call_tracing`, which callgrind
    is told to count): the same count run after run, whatever else the machine is doing. User
    space only: the kernel's part of writing and syncing the WAL is not in it."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("error: --instructions needs valgrind on the PATH (Debian's valgrind package)")
    with tempfile.TemporaryDirectory(prefix="bench-callgrind-") as folder:
        counts = Path(folder) / "callgrind.out"
        callgrind = [valgrind, "--tool=callgrind", "--collect-atstart=no"]
        callgrind += ["--toggle-collect=sys_call_tracing", f"--callgrind-out-file={counts}"]
        # The same hash seed in every run: set and dict layouts, and so the count, repeat.
        out = _one_run(tree, events, batch_size, under=callgrind, seed="0")
        found = re.search(r"^(?:summary|totals): (\d+)", counts.read_text() if counts.exists() else "", re.M)
    if out.returncode != 0 or found is None or int(found.group(1)) == 0:
        raise SystemExit(
            f"error: callgrind counted nothing in bench.batches of the tree at {tree}: {_last_said(out)}"
        )
    return int(found.group(1)) / events


def against(
    ref: str, rounds: int, events: int, batch_size: int, *, instructions: bool = False
) -> dict[str, Any]:
    """This tree and the commit `ref` in turns, `rounds` times each (ABBA order, so a machine
    growing slower or faster favours neither); the figures of both and of their ratios: µs of
    CPU per event, or with `instructions` callgrind's count per event."""
    measure = instructions_of_one_run if instructions else cpu_of_one_run
    with tempfile.TemporaryDirectory(prefix="bench-against-") as folder:
        other = Path(folder) / "ref"
        git = ["git", "-C", str(ROOT)]
        added = subprocess.run(
            [*git, "worktree", "add", "--detach", "--quiet", str(other), ref], capture_output=True, text=True
        )
        if added.returncode != 0:
            said = (added.stderr.strip() or "git said nothing").splitlines()[-1]
            raise SystemExit(f"error: cannot check out {ref!r} to compare with: {said}")
        try:
            runs: dict[str, list[float]] = {"this": [], "ref": []}
            for number in range(rounds):
                order = ("this", "ref") if number % 2 == 0 else ("ref", "this")
                for name in order:
                    tree = ROOT if name == "this" else other
                    runs[name].append(measure(tree, events, batch_size))
        finally:
            subprocess.run([*git, "worktree", "remove", "--force", str(other)], capture_output=True)
    ratios = sorted(mine / theirs for mine, theirs in zip(runs["this"], runs["ref"], strict=True))
    quarter = len(ratios) // 4
    return {
        "ref": ref,
        "unit": "instructions per event" if instructions else "us CPU per event",
        "per_event": runs,
        "median": {name: statistics.median(values) for name, values in runs.items()},
        "fastest": {name: min(values) for name, values in runs.items()},
        "ratio_median": statistics.median(ratios),
        "ratio_middle_half": (ratios[quarter], ratios[-1 - quarter]),
    }


def print_against(figures: dict[str, Any]) -> None:
    rounds, unit = len(figures["per_event"]["this"]), figures["unit"]
    for name in ("this", "ref"):
        label = "this tree" if name == "this" else figures["ref"]
        print(
            f"{label:>12}: median {figures['median'][name]:,.1f} {unit},"
            f" fastest {figures['fastest'][name]:,.1f} ({rounds} runs)"
        )
    low, high = figures["ratio_middle_half"]
    print(
        f"this / {figures['ref']}: {figures['ratio_median']:.3f} (median of {rounds} rounds;"
        f" middle half {low:.3f} to {high:.3f})"
    )


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
    parser.add_argument(
        "--against",
        metavar="REF",
        help="compare this tree with the commit REF, run in turns (see above); no --wal-pages",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        help="with --against: runs of each tree (default 10; 1 with --instructions, whose count repeats)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count the instructions per event with callgrind instead of timing (see above); slow:"
        " --events 2000 takes about half a minute",
    )
    args = parser.parse_args(argv)
    if args.against:
        rounds = args.rounds or (1 if args.instructions else 10)
        figures = against(args.against, rounds, args.events, args.batch_size, instructions=args.instructions)
        print_against(figures)
        return [figures]
    if args.instructions:
        count = instructions_of_one_run(ROOT, args.events, args.batch_size)
        print(f"{count:,.0f} instructions per event ({args.events:,} events, batches of {args.batch_size})")
        return [{"instructions_per_event": count}]
    with tempfile.TemporaryDirectory(prefix="bench-batches-") as folder:
        runs = [
            run(Path(folder), args.events, args.batch_size, wal_pages=args.wal_pages)
            for _ in range(args.repeat)
        ]
    for number, figures in enumerate(runs, 1):
        cpu, wall, commit, collector = (
            figures[f"{kind}_us_per_event"] for kind in ("cpu", "wall", "commit", "gc")
        )
        print(
            f"run {number}: {cpu} us CPU per event, {wall} us wall, {commit} us in COMMIT,"
            f" {collector} us collecting garbage"
        )
        for name, pages in figures.get("wal_pages_per_event", {}).items():
            print(f"  {name:40} {pages:5.2f} WAL pages per event")
    median = statistics.median(figures["cpu_us_per_event"] for figures in runs)
    sizes = f"{args.events:,} events, batches of {args.batch_size}"
    print(f"median of {len(runs)}: {median:.1f} us CPU per event ({sizes})")
    return runs


if __name__ == "__main__":
    main()
