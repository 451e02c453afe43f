"""The real worker under load: `python -m worker run` as a subprocess, timed by the broker."""

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bench.broker import Watcher, prefill
from bench.mix import Message
from support.client import NAMES
from support.worker_process import WorkerProcess

OBSERVED = "bench.observed"  # a durable quorum queue bound to the notifications exchange with "#"


def wait_consuming(worker: WorkerProcess, watcher: Watcher, timeout: float = 60.0) -> float:
    """Seconds from spawn until the broker shows the worker consuming its queue."""

    def consuming() -> bool:
        worker.check_alive()
        try:
            return watcher.depth(NAMES.queue)[1] > 0
        except Exception:  # the queue is not declared yet: a passive declare closes the channel
            watcher.channel = watcher.connection.channel()
            return False

    return (
        watcher.wait_until(consuming, timeout=timeout, every=0.005, what="the worker to consume")
        - worker.started
    )


@dataclass
class WorkerRun:
    events: int
    notifications: int
    seconds: float
    startup_s: float
    dead_letters: int
    prefill_s: float
    cpu_s: float  # the worker's user+system CPU from consume-start to the last notification
    broker_cpu_s: float | None
    rss_mb: dict[int, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds


def timed_run(
    worker: WorkerProcess,
    watcher: Watcher,
    url: str,
    messages: Iterable[Message],
    *,
    timeout: float,
    rss_every: int = 0,
    on_consuming: Callable[[WorkerProcess], None] | None = None,
) -> WorkerRun:
    """Pre-fill the (stopped) worker's queue, start it, and time consume-start to the last
    notification on the observed queue. With `rss_every`, sample its RSS as the count grows
    and purge the observed queue on the way, so the broker's memory stays flat too."""
    filled = prefill(url, NAMES.events_exchange, messages)
    worker.start(wait=False)
    startup_s = wait_consuming(worker, watcher)
    began = worker.started + startup_s
    if on_consuming is not None:
        on_consuming(worker)
    cpu_began, broker_began = cpu_seconds(worker.pid) or 0.0, cpu_seconds(broker_pid())
    counted = 0
    rss: dict[int, float] = {}
    next_sample = rss_every
    deadline = time.monotonic() + timeout
    while True:
        depth = watcher.depth(OBSERVED)[0]
        if counted + depth >= filled.notifications:
            ended = time.perf_counter()
            break
        worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"only {counted + depth} of {filled.notifications} notifications after {timeout:g}s"
            )
        if rss_every and counted + depth >= next_sample:
            rss[counted + depth] = worker.status_kb("VmRSS") / 1024
            next_sample += rss_every
        if rss_every and depth > 20_000:
            counted += watcher.purge(OBSERVED)
        time.sleep(0.05 if rss_every else 0.01)
    cpu_s = (cpu_seconds(worker.pid) or 0.0) - cpu_began
    broker_ended = cpu_seconds(broker_pid())
    broker_cpu_s = None if broker_began is None or broker_ended is None else broker_ended - broker_began
    if rss_every:
        rss[filled.notifications] = worker.status_kb("VmRSS") / 1024
    peak = worker.status_kb("VmHWM") / 1024
    dead = watcher.depth(NAMES.dead_letter_queue)[0] + watcher.depth(NAMES.unrouted_queue)[0]
    watcher.purge(OBSERVED)
    return WorkerRun(
        filled.events,
        filled.notifications,
        ended - began,
        startup_s,
        dead,
        filled.seconds,
        cpu_s or 0.0,
        broker_cpu_s,
        rss,
        peak,
    )


def cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU seconds a process has used so far (None if it cannot be read)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def broker_pid() -> int | None:
    """The local RabbitMQ's Erlang VM, if it runs on this host (for its CPU share)."""
    for status in Path("/proc").glob("[0-9]*/comm"):
        try:
            if status.read_text().strip() == "beam.smp":
                return int(status.parent.name)
        except OSError:
            continue
    return None


def store_bytes(store_url: str) -> int | None:
    """The store's size on disk: SQLite file plus WAL, or the PostgreSQL tables; None if unknown."""
    if store_url.startswith("sqlite:"):
        path = Path(store_url.removeprefix("sqlite://").removeprefix("/"))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())
    if store_url.startswith(("postgresql:", "postgres:")):
        import psycopg

        tables = ("owner_settings", "decision_makers", "inbox", "reminders", "outbox")
        with psycopg.connect(store_url) as connection:
            row = connection.execute(
                "SELECT sum(pg_total_relation_size(t::regclass)) FROM unnest(%s::text[]) AS t",
                (list(tables),),
            ).fetchone()
        return int(row[0]) if row and row[0] is not None else None
    return None
