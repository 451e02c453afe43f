"""The console for tests: a users file with a viewer and an operator, a store holding dead
letters, the console as an in-process app or as a real `renewals console` process."""

import base64
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.testclient import TestClient

from support.polling import wait_until
from worker.console.app import create_app
from worker.console.serve import console_of_settings
from worker.console.users import Users
from worker.dead_letters.model import NewLetter
from worker.dead_letters.records import DeadLetterRecords
from worker.settings import Settings
from worker.store import open_store

if TYPE_CHECKING:
    import pytest

VIEWER = ("vera", "viewer-password-1")
OPERATOR = ("olive", "operator-password-1")
UNREACHABLE_BROKER = "amqp://guest:guest@127.0.0.1:9/"


def users_file(folder: Path) -> Path:
    """A users file (0600) holding VIEWER as a viewer and OPERATOR as an operator."""
    path = folder / "console-users.json"
    users = Users.load(path, missing_ok=True)
    users.add(VIEWER[0], "viewer", VIEWER[1])
    users.add(OPERATOR[0], "operator", OPERATOR[1])
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class ConsoleProcess:
    """`renewals console` as a process of its own, on a free port of 127.0.0.1."""

    env: dict[str, str]
    log_path: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ConsoleProcess":
        self.port = free_port()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "worker", "console", "--port", str(self.port)],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_until(self._listening, timeout=20, what=f"the console listening on {self.url}")
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"the console exited ({self.process.returncode}):\n{self.log()}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False


def console_env(store_url: str, amqp_url: str, users: Path, **extra: Any) -> dict[str, str]:
    return {
        "RENEWALS_STORE_URL": store_url,
        "RENEWALS_AMQP_URL": amqp_url,
        "RENEWALS_CONSOLE_USERS": str(users),
        "RENEWALS_LOG_FORMAT": "json",
        **{k: str(v) for k, v in extra.items()},
    }


def in_process(
    folder: Path,
    letters: list[NewLetter],
    *,
    amqp_url: str = UNREACHABLE_BROKER,
    store_url: str | None = None,
    **settings: Any,
) -> tuple[TestClient, DeadLetterRecords]:
    """The console app over a fresh store (SQLite in `folder` unless given) holding `letters`,
    and the store's records. The broker is unreachable unless given (the health strip says so;
    nothing else needs it)."""
    folder.mkdir(parents=True, exist_ok=True)
    store_url = store_url or f"sqlite:///{folder / 'renewals.db'}"
    store = open_store(store_url)
    store.migrate()
    records = DeadLetterRecords(store)
    records.insert(letters)
    options: dict[str, Any] = {"console_users": str(users_file(folder)), **settings}
    console = console_of_settings(Settings(store_url=store_url, amqp_url=amqp_url, **options))
    return TestClient(create_app(console), base_url="http://console.test", follow_redirects=False), records


def basic(user: tuple[str, str]) -> dict[str, str]:
    """An Authorization header for HTTP Basic."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()}


def sign_in(client: TestClient, user: tuple[str, str]) -> str:
    """Sign in through the login form; the page's CSRF token afterwards."""
    client.post(
        "/login", data={"username": user[0], "password": user[1], "csrf_token": csrf_token(client, "/login")}
    )
    return csrf_token(client, "/")


def csrf_token(client: TestClient, path: str) -> str:
    """The CSRF token a page hands its forms."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).text)
    assert found, f"no CSRF token on {path}"
    return found.group(1)


class RecordedLog:
    """Stands in for a module's structlog logger (monkeypatched), keeping each line as a dict:
    loggers cached by an earlier `logs.configure` escape structlog's own capture."""

    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def __getattr__(self, level: str) -> Any:
        def line(event: str, **fields: Any) -> None:
            self.lines.append({"event": event, "log_level": level, **fields})

        return line


def recorded_console_log(monkeypatch: "pytest.MonkeyPatch") -> RecordedLog:
    """Every loaded console module's log lines, recorded in place of its structlog logger."""
    recorded = RecordedLog()
    for name, module in list(sys.modules.items()):
        if name.startswith("worker.console") and hasattr(module, "log"):
            monkeypatch.setattr(module, "log", recorded)
    return recorded
