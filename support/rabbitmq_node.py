"""One RabbitMQ node of our own on this host, beside the shared one (rabbit@localhost on 5672).

Everything that would otherwise come from the system's files is the node's own: name,
distribution port, data, logs, PID file, plugins (none, so it starts fast) and its config file,
which alone chooses the AMQP listener (the system's rabbitmq.conf, which pins 5672, is never
read, and RABBITMQ_NODE_PORT is not used). `rabbitmq-server` and `rabbitmqctl` run through
the system's wrappers, which switch to the `rabbitmq` OS user when called as root, so every
node and every CLI call share that user's Erlang cookie (~rabbitmq/.erlang.cookie).
"""

import os
import signal
import subprocess
import time
import uuid
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from support.services import free_port

NAME_PREFIX = "renewals-spare-"
"""Every node we start is named so; nothing here ever stops a node not named so."""


class NodeFailed(RuntimeError):
    """A spare node did not start, stop or answer; the message ends with its log's last lines."""


def node_names(count: int) -> list[str]:
    """`count` node names no other run uses: renewals-spare-<run>-<n>@localhost."""
    run = uuid.uuid4().hex[:8]
    return [f"{NAME_PREFIX}{run}-{n}@localhost" for n in range(1, count + 1)]


@dataclass(frozen=True)
class RabbitNode:
    """A node's name, AMQP port and folder; `prepare` writes its files, `start` boots it."""

    name: str
    port: int
    folder: Path
    dist_port: int

    @classmethod
    def prepare(cls, name: str, parent: Path, config: str = "") -> "RabbitNode":
        """Write the node's files into parent/<short name>/ (the caller then hands them to `rabbitmq`);
        `config` adds rabbitmq.conf lines to the listener's."""
        if not name.startswith(NAME_PREFIX):
            raise ValueError(f"a spare node's name starts with {NAME_PREFIX!r}: {name}")
        node = cls(name, free_port(), parent / name.split("@")[0], free_port())
        for sub in ("mnesia", "log"):
            (node.folder / sub).mkdir(parents=True)
        # Only loopback listeners, so `guest` (allowed from loopback peers only) needs no loopback_users.
        node.config_file.write_text(f"listeners.tcp.local = 127.0.0.1:{node.port}\n{config}")
        node.plugins_file.write_text("[].\n")
        return node

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def config_file(self) -> Path:
        return self.folder / "rabbitmq.conf"

    @property
    def plugins_file(self) -> Path:
        return self.folder / "enabled_plugins"

    @property
    def pid_file(self) -> Path:
        return self.folder / "rabbitmq.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / "log" / f"{self.name}.log"

    def seen(self, path: Path) -> str:
        """`path` as the node's own processes name it (the same here; see support/chroot_node.py)."""
        return str(path)

    def command(self, program: str, *args: str) -> list[str]:
        """The command line that runs RabbitMQ's `program` (rabbitmq-server, rabbitmqctl) for this
        node: here the system's wrapper, which switches to the `rabbitmq` user itself."""
        return [program, *args]

    def environment(self) -> dict[str, str]:
        return {
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": self.seen(self.config_file),
            "RABBITMQ_ENABLED_PLUGINS_FILE": self.seen(self.plugins_file),
            "RABBITMQ_MNESIA_BASE": self.seen(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": self.seen(self.folder / "log"),
            "RABBITMQ_PID_FILE": self.seen(self.pid_file),
        }

    def launch(self) -> None:
        """Start the node's VM in the background; `wait` for it to boot."""
        self.pid_file.unlink(missing_ok=True)
        # Only our variables: a RABBITMQ_* inherited from the caller's shell must not leak in.
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8", **self.environment()}
        self._run(self.command("rabbitmq-server", "-detached"), env=env, timeout=60)

    def wait(self, timeout: float = 90.0) -> None:
        """Until the node's RabbitMQ application runs (`rabbitmqctl wait` on its PID file)."""
        self._wait_for_pid(timeout)
        self.ctl("wait", self.seen(self.pid_file), "--timeout", str(int(timeout)), timeout=timeout + 15)

    def _wait_for_pid(self, timeout: float) -> None:
        """Until the PID file holds a whole number. `rabbitmqctl wait` reads the file as soon as
        it exists, and fails with `garbage_in_pid_file` if it meets it created but not yet
        written, as it did once while a stopped cluster node was started again."""
        deadline = time.monotonic() + timeout
        seen = None
        while time.monotonic() < deadline:
            with suppress(OSError):
                text = self.pid_file.read_text().strip()
                if text.isdigit() and text == seen:  # the same twice: written, not being written
                    return
                seen = text
            time.sleep(0.05)
        raise NodeFailed(f"{self.name} wrote no PID to {self.pid_file} within {timeout:g}s{self._log_tail()}")

    def start(self, timeout: float = 90.0) -> None:
        self.launch()
        self.wait(timeout)

    def stop(self) -> None:
        """Stop the node's VM and wait until its OS process has gone."""
        self.ctl("stop", self.seen(self.pid_file), timeout=90)

    def halt(self) -> None:
        """Stop the node at the end, however it can be: `stop`, else SIGKILL to its VM (checked by
        name, so a PID reused by another process is never touched). Never raises."""
        try:
            self.stop()
            return
        except NodeFailed:
            pass
        try:
            pid = int(self.pid_file.read_text().strip())
            if self.name.split("@")[0] in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
                os.kill(pid, signal.SIGKILL)
        except (OSError, ValueError):
            pass

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """`rabbitmqctl -n NODE ARGS...`; its standard output, or NodeFailed."""
        return self._run(self.command("rabbitmqctl", "-q", "-n", self.name, *args), timeout=timeout)

    def _run(self, command: list[str], env: dict[str, str] | None = None, timeout: float = 60.0) -> str:
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise NodeFailed(f"{' '.join(command)} took over {timeout:g}s{self._log_tail()}") from exc
        if done.returncode != 0:
            raise NodeFailed(
                f"{' '.join(command)} exited {done.returncode}: {done.stdout}{done.stderr}{self._log_tail()}"
            )
        return done.stdout

    def _log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.log_file.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- " + str(self.log_file) + "\n" + "\n".join(tail)
