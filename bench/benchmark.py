"""The worker against the broker's ceiling, in one run on one broker: `python -m bench.benchmark`.

Measures, in a fresh vhost of its own and with the same messages, durability and queue type:
a bare relay with batched confirms and multiple-acks (the ceiling), a relay that waits for
each confirm (naive), the real worker end to end at log levels info and warning (one worker,
or several on one queue and one store: `--workers 1,3`; or one `renewals run --processes N`:
`--processes 1,2`), each with its CPU per event, latency at steady offered rates, and
peak RSS and the store's size over a long run. Prints one table; `--json` writes it all.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import profiling
from bench.broker import DEFAULT_BROKER
from bench.phases import ROOT, Phases
from bench.report import table, verdicts
from support.services import create_vhost, delete_vhost
from worker.redaction import masked

QUICK = {"events": 300, "long_events": 1500, "rates": [200.0], "latency_seconds": 1.0, "repeat": 1}


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.benchmark",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--amqp-url",
        help="use this vhost (it gets the worker's topology and bench.* queues), not a fresh one",
    )
    parser.add_argument(
        "--broker",
        default=DEFAULT_BROKER,
        help="where to create the fresh vhost with rabbitmqctl (default %(default)s)",
    )
    parser.add_argument(
        "--store-url",
        help="the worker's store for every run, e.g. postgresql://...;"
        " default: a new temporary SQLite file per run",
    )
    parser.add_argument(
        "--workers",
        default="1",
        help="worker processes sharing the queue and the store in a throughput run; several counts"
        " (e.g. 1,3) give one row each against the same ceiling (default %(default)s)",
    )
    parser.add_argument(
        "--processes",
        default="1",
        help="`renewals run --processes N` in a throughput run (one supervisor, N worker processes);"
        " several counts (e.g. 1,2) give one row each against the same ceiling (default %(default)s)",
    )
    parser.add_argument(
        "--events", type=int, default=20_000, help="events per throughput run (default %(default)s)"
    )
    parser.add_argument(
        "--long-events",
        type=int,
        default=200_000,
        help="events in the memory run (default %(default)s)",
    )
    parser.add_argument(
        "--retention-days",
        type=float,
        help="in the long run, keep inbox entries and reminder keys this long (the worker's"
        " RENEWALS_INBOX_RETENTION_DAYS and RENEWALS_REMINDER_RETENTION_DAYS; e.g. 0.0001, about"
        " 9 s), prune every quarter of it, and send reminders for past renewal dates: the store"
        " should level off (default: the worker's own 30 and 7 days, nothing expires)",
    )
    parser.add_argument(
        "--rates",
        default="300,1000",
        help="offered rates for latency, events/s (default %(default)s; empty: skip)",
    )
    parser.add_argument(
        "--latency-seconds",
        type=float,
        default=10.0,
        help="seconds offered per rate (default %(default)s)",
    )
    parser.add_argument(
        "--levels",
        default="info,warning",
        help="worker log levels to time (default %(default)s); info, the worker's default, is the one judged;"
        " 'metrics' is info with the metrics endpoint served (to see what the metrics cost);"
        " 'traced' and 'traced-1pct' are info with tracing on (sampler always_on, or"
        " parentbased_traceidratio at 0.01), exporting over OTLP/HTTP to a local receiver",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="alternate relays and worker runs this often, report medians (default %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the event mix")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the worker, e.g. RENEWALS_BATCH_SIZE=1000",
    )
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy record the first info run into FILE"
        " (collapsed stacks; figures of that run are perturbed)",
    )
    parser.add_argument(
        "--profile-idle",
        action="store_true",
        help="with --profile: also sample waiting threads (wall-clock profile)",
    )
    parser.add_argument(
        "--dead-letters",
        type=int,
        metavar="N",
        help="instead of the worker: time listing, filtering, searching and grouping N dead-letter"
        " records on SQLite and PostgreSQL (--store-url's, or a throw-away server); no broker",
    )
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument(
        "--keep",
        metavar="DIR",
        help="keep worker logs and stores in DIR (default: a temporary directory)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run of a few seconds: " + ", ".join(f"{k}={v}" for k, v in QUICK.items()),
    )
    parsed = parser.parse_args(argv)
    if parsed.quick:
        for name, value in QUICK.items():
            setattr(parsed, name, value)
    elif isinstance(parsed.rates, str):
        parsed.rates = [float(rate) for rate in parsed.rates.split(",") if rate.strip()]
    parsed.levels = [level.strip() for level in parsed.levels.split(",") if level.strip()]
    if "info" not in parsed.levels:
        parser.error("--levels must include info (the worker's default, the one the targets judge)")
    parsed.worker_env = dict(item.split("=", 1) for item in parsed.worker_env)
    try:
        parsed.workers = [int(count) for count in parsed.workers.split(",") if count.strip()]
    except ValueError:
        parser.error("--workers takes counts separated by commas, e.g. 1,3")
    if not parsed.workers or min(parsed.workers) < 1:
        parser.error("--workers takes counts of at least 1, e.g. 1,3")
    try:
        parsed.processes = [int(count) for count in parsed.processes.split(",") if count.strip()]
    except ValueError:
        parser.error("--processes takes counts separated by commas, e.g. 1,2")
    if not parsed.processes or min(parsed.processes) < 1:
        parser.error("--processes takes counts of at least 1, e.g. 1,2")
    if parsed.retention_days is not None and parsed.retention_days <= 0:
        parser.error("--retention-days must be positive")
    if parsed.profile and (fix := profiling.missing()):
        parser.error(fix)
    return parsed


def label(level: str, workers: int, processes: int = 1) -> str:
    """A worker run's name in the results: the log level, and the worker count (`_x3`) or the
    process count of one `renewals run --processes` (`_p2`) if not one."""
    if processes > 1:
        return f"{level}_p{processes}"
    return level if workers == 1 else f"{level}_x{workers}"


def shapes(o: argparse.Namespace) -> list[tuple[int, int]]:
    """The (workers, processes) of each throughput run: every --workers count as separate
    `renewals run`s, then every --processes count above one as one supervised `renewals run`."""
    return [(count, 1) for count in o.workers] + [(1, count) for count in o.processes if count > 1]


def measure(o: argparse.Namespace, url: str, folder: Path) -> dict[str, Any]:
    phases = Phases(o, url, folder)
    try:
        empty_startup = phases.declare_and_sample()
        rounds: dict[str, list[dict[str, Any]]] = {"ceiling": [], "naive": []}
        latency: dict[str, Any] = {}

        def latencies(worker: Any) -> None:
            latency.update(phases.latencies(worker))

        for round_ in range(o.repeat):
            for name, run in phases.relays().items():
                rounds[name].append(run)
            for count, processes in shapes(o):
                for level in o.levels:
                    first = level == "info" and round_ == 0 and (count, processes) == shapes(o)[0]
                    then = latencies if first and o.rates else None
                    run = phases.worker_throughput(level, round_, count, then, processes=processes)
                    rounds.setdefault(label(level, count, processes), []).append(run)
        relay_latency = phases.relay_latencies()
        memory = phases.long_run()
    finally:
        phases.stop_all()
    median = {name: _median(runs) for name, runs in rounds.items()}
    names = [label(level, count, processes) for count, processes in shapes(o) for level in o.levels]
    worker = {name: median[name] for name in names}
    ratios = {}
    for name, run in worker.items():
        ratios[f"worker_{name}_over_ceiling"] = run["events_per_s"] / median["ceiling"]["events_per_s"]
        ratios[f"worker_{name}_over_naive"] = run["events_per_s"] / median["naive"]["events_per_s"]
    scaling = {
        label(level, count, processes): worker[label(level, count, processes)]["events_per_s"]
        / worker[level]["events_per_s"]
        for count, processes in shapes(o)
        if count * processes > 1 and 1 in o.workers
        for level in o.levels
    }
    result = {
        "meta": {
            "commit": _commit(),
            "broker_version": phases.watcher.server_version(),
            "cpus": os.cpu_count(),
            "store": masked(o.store_url) if o.store_url else "sqlite (a new temporary file per run)",
            "store_server": phases.stores.server(),
            "events": o.events,
            "workers": o.workers,
            "processes": o.processes,
            "retention_days": o.retention_days,
            "repeat": o.repeat,
            "quick": o.quick,
            "profiled": bool(o.profile),
            "worker_env": o.worker_env,
            "otlp_received": None
            if phases.receiver is None
            else {"requests": phases.receiver.requests, "bytes": phases.receiver.bytes},
            "input_bytes": phases.input_bytes,
            "output_bytes": phases.output_bytes,
        },
        "ceiling": median["ceiling"],
        "naive": median["naive"],
        "worker": worker,
        "ratios": ratios,
        "scaling": scaling,
        "latency": latency,
        "relay_latency": relay_latency,
        "memory": memory,
        "startup_s": {
            "empty_queue": empty_startup,
            "backlog": statistics.median(r["startup_s"] for name in worker for r in rounds[name]),
        },
        "rounds": rounds,
    }
    result["targets"] = verdicts(result)
    return result


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (the lower one of two), so its other figures stay consistent."""
    ordered = sorted(runs, key=lambda run: run["events_per_s"])
    return ordered[(len(ordered) - 1) // 2]


def _commit() -> str:
    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)

    head = git("rev-parse", "--short", "HEAD").stdout.strip() or "unknown"
    return head + ("-dirty" if git("diff", "--quiet", "HEAD").returncode else "")


def main(argv: list[str] | None = None) -> int:
    o = options(argv)
    if o.dead_letters:
        return _dead_letters(o)
    vhost = None
    url = o.amqp_url
    if url is None:
        vhost, url = create_vhost(o.broker, prefix="renewals-bench")
    try:
        with tempfile.TemporaryDirectory(prefix="renewals-bench-") as temporary:
            folder = Path(o.keep or temporary)
            folder.mkdir(parents=True, exist_ok=True)
            result = measure(o, url, folder)
    finally:
        if vhost is not None:
            delete_vhost(vhost)
    print(table(result))
    if o.json:
        Path(o.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


def _dead_letters(o: argparse.Namespace) -> int:
    from bench import dead_letters

    with tempfile.TemporaryDirectory(prefix="renewals-bench-") as temporary:
        result = dead_letters.measure(o.dead_letters, Path(o.keep or temporary), o.store_url)
    print(dead_letters.table(result))
    if o.json:
        Path(o.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
