"""The real worker as a subprocess (`python -m worker run`, or the test entry point with fault
handlers), its JSON log lines in a file of its own."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from support.polling import wait_until


class WorkerExited(AssertionError):
    """The worker process ended while something was still expected of it."""


class WorkerProcess:
    """One worker process; `start` spawns it (again, after a stop), logging to `log_path`."""

    def __init__(
        self,
        amqp_url: str,
        folder: Path,
        *,
        store_url: str | None = None,
        name: str = "worker",
        env: Mapping[str, str] | None = None,
        faults: Mapping[str, str] | None = None,
    ) -> None:
        self.log_path = folder / f"{name}-{time.monotonic_ns()}.log"
        self.env = {
            **os.environ,
            "RENEWALS_AMQP_URL": amqp_url,
            "RENEWALS_STORE_URL": store_url or f"sqlite:///{folder / 'renewals.db'}",
            "RENEWALS_LOG_FORMAT": "json",
            **(env or {}),
        }
        self.faults = dict(faults or {})
        self.process: subprocess.Popen[bytes] | None = None
        self.started = 0.0  # perf_counter at the last spawn

    @property
    def command(self) -> list[str]:
        if self.faults:
            return [
                sys.executable,
                "-m",
                "support.faulty_worker",
                *(f"{t}={f}" for t, f in self.faults.items()),
            ]
        return [sys.executable, "-m", "worker", "run"]

    def start(self, wait: bool = True, timeout: float = 20.0) -> "WorkerProcess":
        """Spawn it; with `wait`, return once it logged `worker.consuming`."""
        already = len(self.find("worker.consuming"))
        with open(self.log_path, "ab") as log:
            self.started = time.perf_counter()
            self.process = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_for("worker.consuming", count=already + 1, timeout=timeout)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def lines(self) -> list[dict[str, Any]]:
        """Every log line so far, parsed (a line that is not JSON comes back as `raw`)."""
        if not self.log_path.exists():
            return []
        records = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                records.append({"event": "raw", "text": line})
        return records

    def find(self, event: str) -> list[dict[str, Any]]:
        return [record for record in self.lines() if record.get("event") == event]

    def wait_for(self, event: str, count: int = 1, timeout: float = 20.0) -> list[dict[str, Any]]:
        """At least `count` log lines named `event`; fail early if the process ends first."""

        def enough() -> list[dict[str, Any]]:
            found = self.find(event)
            if len(found) < count:
                self.check_alive()
                return []
            return found

        try:
            return wait_until(enough, f"{count}x {event}", timeout)
        except TimeoutError as exc:
            raise AssertionError(f"{exc}:\n{self.tail()}") from None

    def check_alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise WorkerExited(f"the worker exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self, chars: int = 4000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal it and wait for its exit status (killed if it outlives `timeout`)."""
        assert self.process is not None, "not started"
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def kill(self) -> None:
        """kill -9, as an out-of-memory killer or a pulled plug would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def status_kb(self, field_name: str) -> int:
        """A memory figure of /proc/PID/status (VmRSS, VmHWM) in kB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
        raise KeyError(field_name)


def stop_all(workers: list[WorkerProcess]) -> None:
    """SIGTERM every running worker at once, then wait for each (tear-down)."""
    for worker in workers:
        if worker.running():
            assert worker.process is not None
            worker.process.send_signal(signal.SIGTERM)
    for worker in workers:
        if worker.process is not None:
            try:
                worker.process.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
