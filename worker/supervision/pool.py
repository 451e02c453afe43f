"""`renewals run --processes N`: a supervisor that runs N worker processes on one queue and one
store, as Celery's and Dramatiq's pools do, so that one `renewals run` uses several cores.

Each child is the very worker `renewals run` starts (`python -m worker run`, a fresh
interpreter: no socket, thread or lock is inherited), with RENEWALS_PROCESSES=1 and its probes on
a private loopback port. The supervisor

- restarts a child that dies, after a backoff that doubles with each death in a row of that slot
  (reset once the child is ready);
- gives up the whole run, with one line, when children keep dying before they are ready
  (`START_ATTEMPTS` in a row), or at once when one stops for good because the configuration or
  a refusal needs a fix (exit 77 or 78, which it passes on);
- forwards SIGTERM/SIGINT (the children are in a process group of their own, so a terminal's
  Ctrl-C reaches them through the supervisor only) and waits for them, at most the grace;
- serves one `/metrics`, `/healthz` and `/readyz` made of its children's (`probes`).

A child is told its supervisor's pid (`run --supervised-by`): should the supervisor die without
stopping it (kill -9, the OOM killer), the kernel sends the child SIGTERM and it stops gracefully,
rather than run on unsupervised beside the supervisor's replacement.

The children share the store as several workers do: each opens its own connection (on SQLite,
the one file in WAL mode), and the database decides which owner change is newest.
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker import logs
from worker.exits import EX_CONFIG, EX_FAILED, EX_REFUSED, EX_SOFTWARE
from worker.failures import metrics_port_taken
from worker.logs import Logger
from worker.service.endpoint import ProbeServer
from worker.settings import Settings
from worker.supervision.probes import ChildView, ask, serve_combined


def worker_command() -> list[str]:
    """A child: the worker `renewals run` is, told its supervisor's pid (it stops when we die)."""
    return [sys.executable, "-m", "worker", "run", "--supervised-by", str(os.getpid())]


START_ATTEMPTS = 3
"""Deaths in a row of children that never became ready, after which the supervisor gives up."""
FIRST_DELAY = 0.5
"""Seconds before a slot's first restart; doubled with each death in a row, up to the
reconnect's `RENEWALS_RECONNECT_MAX_DELAY`."""
TICK = 0.2
"""Seconds between two looks at the children."""
FOR_GOOD = (EX_CONFIG, EX_REFUSED)
"""A child's exit status that no restart can cure: the supervisor passes it on at once."""


@dataclass(slots=True)
class Slot:
    """One of the N places a child runs in; its process comes and goes."""

    index: int
    port: int
    process: subprocess.Popen[bytes] | None = None
    spawned: float = 0.0
    ready: bool = False  # the current child answered /readyz 200 at least once
    deaths_in_row: int = 0
    restart_at: float = 0.0

    def view(self) -> ChildView:
        return ChildView(self.index, self.process.pid if self.process is not None else None, self.port)


class GiveUp(Exception):
    """The supervisor stops the whole run: `reason` is its one line, `status` its exit status."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


def supervise(
    settings: Settings,
    *,
    command: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Run `settings.processes` children of `command` (the worker's, by default) until
    SIGTERM/SIGINT; the exit status."""
    log = logs.get_logger("renewals.supervisor")
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        if not stop.is_set():
            log.info(
                "supervisor.stopping", signal=signal.Signals(signum).name, grace_s=settings.shutdown_grace
            )
            stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    pool = Pool(
        settings,
        worker_command() if command is None else command,
        dict(os.environ if environ is None else environ),
        log,
    )
    server = None
    if settings.metrics_port is not None:
        try:
            server = _serve(settings, pool, stop)
        except OSError as exc:
            error = metrics_port_taken(settings.metrics_port, settings.metrics_host, exc)
            log.error("supervisor.cannot_start", error=error, exit_status=EX_CONFIG)
            return EX_CONFIG
        log.info("metrics.serving", host=settings.metrics_host, port=settings.metrics_port)
    log.info("supervisor.starting", processes=settings.processes, pid=os.getpid())
    try:
        pool.run(stop)
    except GiveUp as exc:
        pool.stop_all(grace=settings.shutdown_grace)
        log.error("supervisor.gave_up", error=str(exc), exit_status=exc.status)
        sys.stderr.flush()
        return exc.status
    finally:
        if server is not None:
            server.close()
    status = pool.stop_all(grace=settings.shutdown_grace)
    log.info("supervisor.stopped", exit_status=status)
    return status


class Pool:
    """The children and what the supervisor's loop does with them."""

    def __init__(
        self, settings: Settings, command: Sequence[str], environ: dict[str, str], log: Logger
    ) -> None:
        self._settings = settings
        self._command = list(command)
        self._environ = environ
        self._log = log
        self.slots = [Slot(index, _free_port()) for index in range(settings.processes)]
        self.failed_starts = 0
        self.restarts = 0
        self.last_tick = time.monotonic()

    def run(self, stop: threading.Event) -> None:
        """Spawn, watch, restart, until `stop` is set; GiveUp when there is no point going on."""
        while not stop.is_set():
            self.last_tick = now = time.monotonic()
            for slot in self.slots:
                if slot.process is None:
                    if now >= slot.restart_at:
                        self._spawn(slot)
                elif (status := slot.process.poll()) is not None:
                    self._died(slot, status)
                elif not slot.ready and ask(slot.port, "/readyz", timeout=0.5)[0] == 200:
                    slot.ready, slot.deaths_in_row, self.failed_starts = True, 0, 0
                    self._log.info("supervisor.child_ready", index=slot.index, pid=slot.process.pid)
            stop.wait(TICK)

    def _spawn(self, slot: Slot) -> None:
        env = {
            **self._environ,
            "RENEWALS_PROCESSES": "1",
            "RENEWALS_METRICS_HOST": "127.0.0.1",
            "RENEWALS_METRICS_PORT": str(slot.port),
        }
        slot.process = subprocess.Popen(self._command, env=env, process_group=0)
        slot.spawned, slot.ready = time.monotonic(), False
        self._log.info("supervisor.child_started", index=slot.index, pid=slot.process.pid, port=slot.port)

    def _died(self, slot: Slot, status: int) -> None:
        assert slot.process is not None
        pid, was_ready = slot.process.pid, slot.ready
        slot.process, slot.ready = None, False
        lived = round(time.monotonic() - slot.spawned, 2)
        if status in FOR_GOOD:
            raise GiveUp(
                f"worker process {slot.index} (pid {pid}) stopped with exit status {status}: the line"
                " it logged before says what to fix",
                status,
            )
        if not was_ready:
            self.failed_starts += 1
            if self.failed_starts >= START_ATTEMPTS:
                raise GiveUp(
                    f"{self.failed_starts} worker processes in a row died before they were ready (the"
                    f" last, pid {pid}, with exit status {_described(status)}): see their log lines above",
                    EX_FAILED,
                )
        slot.deaths_in_row += 1
        delay = min(self._settings.reconnect_max_delay, FIRST_DELAY * 2 ** (slot.deaths_in_row - 1))
        slot.restart_at = time.monotonic() + delay
        slot.port = _free_port()  # the dead child's port may linger in TIME_WAIT or another's hands
        self.restarts += 1
        self._log.warning(
            "supervisor.child_died",
            index=slot.index,
            pid=pid,
            exit_status=_described(status),
            lived_s=lived,
            was_ready=was_ready,
            restart_in_s=delay,
        )

    def stop_all(self, *, grace: float) -> int:
        """SIGTERM every child, wait for each (the grace and a few seconds, then kill -9); the
        first non-zero exit status among them, else 0."""
        running = [slot.process for slot in self.slots if slot.process is not None]
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace + 5.0
        statuses = []
        for process in running:
            try:
                statuses.append(process.wait(max(0.0, deadline - time.monotonic())))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                statuses.append(EX_SOFTWARE)
        for slot in self.slots:
            slot.process = None
        return next((_exit_status(status) for status in statuses if status != 0), 0)

    def own_metrics(self) -> str:
        """The supervisor's own samples, in Prometheus' text format."""
        alive = sum(1 for slot in self.slots if slot.process is not None)
        return (
            "# HELP renewals_worker_processes Worker processes the supervisor runs now.\n"
            "# TYPE renewals_worker_processes gauge\n"
            f"renewals_worker_processes {alive}.0\n"
            "# HELP renewals_worker_process_restarts_total Worker processes restarted after a death.\n"
            "# TYPE renewals_worker_process_restarts_total counter\n"
            f"renewals_worker_process_restarts_total {self.restarts}.0\n"
        )


def _serve(settings: Settings, pool: Pool, stop: threading.Event) -> ProbeServer:
    """The combined endpoints on the configured address; OSError at once if it cannot be bound."""

    def alive() -> bool:
        return stop.is_set() or time.monotonic() - pool.last_tick < settings.health_stale_after

    return serve_combined(
        lambda: [slot.view() for slot in pool.slots],
        pool.own_metrics,
        alive,
        settings.metrics_host,
        settings.metrics_port or 0,
    )


def _free_port() -> int:
    """A loopback port free now, for one child's private probes."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _described(status: int) -> str | int:
    """An exit status, or the signal that ended the process (`SIGKILL`)."""
    if status < 0:
        try:
            return signal.Signals(-status).name
        except ValueError:
            return status
    return status


def _exit_status(status: int) -> int:
    """A child's status as ours: a child ended by a signal is an unclean stop (70)."""
    return EX_SOFTWARE if status < 0 else status
