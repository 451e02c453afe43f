"""The real worker under load: `python -m worker run` as a subprocess, timed by the broker."""

import functools
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.broker import Watcher, prefill
from bench.mix import Message
from support.client import NAMES
from support.records import stored_letters
from support.worker_process import WorkerProcess

OBSERVED = "bench.observed"  # a durable quorum queue bound to the notifications exchange with "#"


def wait_consuming(worker: WorkerProcess, watcher: Watcher, timeout: float = 60.0) -> float:
    """Seconds from spawn until the broker shows the worker (or the first of several) consuming."""

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
    cpu_s: (
        float  # the workers' (and their children's) user+system CPU, consume-start to the last notification
    )
    broker_cpu_s: float | None
    workers: int = 1
    processes: int = 1  # worker processes under each `renewals run` (its supervisor's children)
    rss_mb: dict[int, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0  # the largest of the workers' peaks
    samples: dict[int, dict[str, Any]] = field(default_factory=dict)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds

    @property
    def cpu_us_per_event(self) -> float:
        """Microseconds of the workers' CPU per event handled."""
        return self.cpu_s / self.events * 1e6


def timed_run(
    workers: Sequence[WorkerProcess],
    watcher: Watcher,
    url: str,
    messages: Iterable[Message],
    *,
    timeout: float,
    rss_every: int = 0,
    sample: Callable[[], dict[str, Any]] | None = None,
    on_consuming: Callable[[WorkerProcess], None] | None = None,
) -> WorkerRun:
    """Pre-fill the (stopped) workers' queue, start them all at once, and time the first one
    consuming to the last notification on the observed queue. With `rss_every`, sample their
    RSS (summed) and `sample()` (the store, say) as the count grows, and purge the observed
    queue on the way, so the broker's memory stays flat too."""
    filled = prefill(url, NAMES.events_exchange, messages)
    for worker in workers:
        worker.start(wait=False)
    first = workers[0]
    startup_s = wait_consuming(first, watcher)
    began = first.started + startup_s
    if on_consuming is not None:
        on_consuming(first)
    cpu_began, broker_began = _cpu(workers), cpu_seconds(broker_pid())
    counted = 0
    rss: dict[int, float] = {}
    samples: dict[int, dict[str, Any]] = {}
    next_sample = rss_every
    deadline = time.monotonic() + timeout
    while True:
        depth = watcher.depth(OBSERVED)[0]
        if counted + depth >= filled.notifications:
            ended = time.perf_counter()
            break
        for worker in workers:
            worker.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"only {counted + depth} of {filled.notifications} notifications after {timeout:g}s"
            )
        if rss_every and counted + depth >= next_sample:
            rss[counted + depth] = _rss_mb(workers)
            if sample is not None:
                samples[counted + depth] = sample()
            next_sample += rss_every
        if rss_every and depth > 20_000:
            counted += watcher.purge(OBSERVED)
        time.sleep(0.05 if rss_every else 0.01)
    cpu_s = _cpu(workers) - cpu_began
    broker_ended = cpu_seconds(broker_pid())
    broker_cpu_s = None if broker_began is None or broker_ended is None else broker_ended - broker_began
    if rss_every:
        rss[filled.notifications] = _rss_mb(workers)
        if sample is not None:
            samples[filled.notifications] = sample()
    peak = max(_peak_kb(worker.pid) for worker in workers) / 1024
    recorded = len(stored_letters(workers[0].env["RENEWALS_STORE_URL"]))  # the queue is their transport
    dead = recorded + watcher.depth(NAMES.dead_letter_queue)[0] + watcher.depth(NAMES.unrouted_queue)[0]
    watcher.purge(OBSERVED)
    return WorkerRun(
        filled.events,
        filled.notifications,
        ended - began,
        startup_s,
        dead,
        filled.seconds,
        cpu_s,
        broker_cpu_s,
        len(workers),
        int(workers[0].env.get("RENEWALS_PROCESSES", "1")),
        rss,
        peak,
        samples,
    )


def _cpu(workers: Sequence[WorkerProcess]) -> float:
    """The workers' CPU seconds, each with its live children's (a supervisor's worker processes)."""
    return sum(cpu_seconds(pid) or 0.0 for worker in workers for pid in process_tree(worker.pid))


def _rss_mb(workers: Sequence[WorkerProcess]) -> float:
    return sum(_status_kb(pid, "VmRSS") for worker in workers for pid in process_tree(worker.pid)) / 1024


def _peak_kb(pid: int) -> int:
    """The largest peak RSS (VmHWM) of a worker and its live children."""
    return max(_status_kb(one, "VmHWM") for one in process_tree(pid))


def _status_kb(pid: int, name: str) -> int:
    """A memory figure of /proc/PID/status in kB (0 if the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in lines if line.startswith(name + ":")), 0)


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants (from each process's parent in /proc/*/stat)."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(parent, []).append(int(stat.parent.name))
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for one in frontier for child in parents.get(one, [])]
        tree += frontier
    return tree


def cpu_seconds(pid: int | None) -> float | None:
    """User plus system CPU seconds a process has used so far (None if it cannot be read)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@functools.cache
def broker_pid() -> int | None:
    """The local RabbitMQ node's Erlang VM, as the node itself says (`rabbitmqctl eval`), for
    its CPU share: not another node's (the 4.x test brokers run beside it). None if it cannot say."""
    try:
        answer = subprocess.run(
            ["rabbitmqctl", "-q", "eval", "os:getpid()."], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = answer.stdout.strip().strip('"')
    return int(text) if answer.returncode == 0 and text.isdigit() else None
