"""Every command against every failure that applies to it: the exit status of the table in
docs/configuration.md#exit-statuses and the one wording of worker/failures.py, in one line
(`Error: ...`), never a traceback. Read it as a table: command x failure -> status + wording."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from click.testing import CliRunner

from support.sqlite_files import damaged_store, not_a_store
from worker.cli import main
from worker.console.users import Users
from worker.exits import EX_CONFIG, EX_FAILED, EX_REFUSED
from worker.store import SCHEMA_VERSION, open_store

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "renewal-approaching.json")
ADD = ("console", "user", "add", "ann", "--role", "viewer", "--password-stdin")


@dataclass(frozen=True)
class Failure:
    status: int
    wording: str
    """What the one line holds: {port} the closed or taken port, {store} the missing SQLite path,
    {damaged} the damaged one, {users} the users file, {broker} the AMQP URL with its password
    masked."""


FAILURES = {
    "broker unreachable": Failure(
        EX_FAILED, "cannot reach the broker at amqp://guest:***@127.0.0.1:{port}/: "
    ),
    "topology not declared": Failure(
        EX_FAILED, "does not exist on {broker} (`renewals topology --declare` creates it)"
    ),
    "login refused": Failure(
        EX_REFUSED, "the broker refused the login: check the user and password in RENEWALS_AMQP_URL"
    ),
    "vhost missing": Failure(EX_REFUSED, "the broker refused the vhost (it does not exist, or this user"),
    "database missing (SQLite)": Failure(
        EX_REFUSED, "no store at {store}: set RENEWALS_STORE_URL to the worker's store"
    ),
    "not a store (SQLite)": Failure(
        EX_REFUSED,
        "DatabaseError: file is not a database; set RENEWALS_STORE_URL to the worker's store file,"
        " or move this file aside",
    ),
    "store damaged (SQLite)": Failure(
        EX_FAILED,
        "cannot open the store sqlite:///{damaged}: DatabaseError: database disk image is malformed",
    ),
    "database missing (PostgreSQL)": Failure(
        EX_REFUSED,
        'database "renewals_no_such_database" does not exist; check the database name, user and password'
        " in RENEWALS_STORE_URL, or create the database",
    ),
    "store refused": Failure(
        EX_REFUSED,
        'role "renewals_nobody" does not exist; check the database name, user and password in'
        " RENEWALS_STORE_URL, or create the database",
    ),
    "store of a later release": Failure(
        EX_CONFIG, f"the store's schema is version {SCHEMA_VERSION + 1}, newer than version {SCHEMA_VERSION}"
    ),
    "setting invalid": Failure(
        EX_CONFIG,
        "RENEWALS_PREFETCH=70000: input should be less than or equal to 65535; set RENEWALS_PREFETCH",
    ),
    "port taken": Failure(EX_CONFIG, "cannot listen on 127.0.0.1:{port}"),
    "users file unset": Failure(EX_CONFIG, "set RENEWALS_CONSOLE_USERS to the users file to manage"),
    "console closed": Failure(EX_CONFIG, "the console is closed: set RENEWALS_CONSOLE_USERS to a users file"),
    "users file invalid": Failure(
        EX_CONFIG, "cannot read the console users file {users}: no 'users' in it, where {{\"users\""
    ),
}

BROKER = [
    ("send", EXAMPLE),
    ("notifications",),
    ("demo", "--timeout", "2"),
    ("topology",),
    ("topology", "--declare"),
]
DLQ = [
    ("dlq", "list"),
    ("dlq", "show", "evt-1"),
    ("dlq", "groups"),
    ("dlq", "history", "evt-1"),
    ("dlq", "note", "evt-1", "a note"),
    ("dlq", "archive", "--all", "--yes"),
    ("dlq", "export", "--out", "out.jsonl"),
    ("dlq", "purge", "--all", "--yes"),
    ("dlq", "replays"),
    ("dlq", "cancel", "op-1"),
    ("dlq", "replay", "--all"),
]
LEDGER = [("reminders", "--client", "c1"), ("owners", "history", "--partner", "p1")]
FORGET = ("forget", "--client", "c-1")
READ_STORE = [("store", "status"), ("owners", "show", "--partner", "p1"), *LEDGER, *DLQ, FORGET]
OPEN_STORE = [("run",), ("store", "migrate"), *READ_STORE, ("console",)]
EVERY = [("run",), *BROKER, *OPEN_STORE[1:], ADD, ("console", "user", "remove", "ann")]

BROKER_TABLE: list[tuple[tuple[str, ...], str]] = [  # a real broker, on a vhost of the test's own
    *[
        (command, failure)
        for failure in ("login refused", "vhost missing")
        for command in [("run",), *BROKER]
    ],
    (("send", EXAMPLE), "topology not declared"),
    (("notifications",), "topology not declared"),
]
TABLE: list[tuple[tuple[str, ...], str]] = [  # no broker is reached: the URL names a closed port
    *[(command, "broker unreachable") for command in BROKER],
    *[(command, "database missing (SQLite)") for command in READ_STORE],
    *[(command, "not a store (SQLite)") for command in OPEN_STORE],
    *[(command, "store damaged (SQLite)") for command in OPEN_STORE],
    *[(command, "database missing (PostgreSQL)") for command in OPEN_STORE],
    *[(command, "store refused") for command in OPEN_STORE],
    *[
        (command, "store of a later release")
        for command in [("run",), ("store", "migrate"), *LEDGER, *DLQ, FORGET, ("console",)]
    ],
    *[(command, "setting invalid") for command in EVERY],
    (("run",), "port taken"),
    (("console",), "port taken"),
    (("console",), "console closed"),
    *[(command, "users file unset") for command in (ADD, ("console", "user", "remove", "ann"))],
    *[
        (command, "users file invalid")
        for command in (("console",), ADD, ("console", "user", "remove", "ann"))
    ],
]


def named(table: list[tuple[tuple[str, ...], str]]) -> list[str]:
    return [f"{'send' if c[0] == 'send' else ' '.join(c[:2])} x {f}" for c, f in table]


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        yield int(taken.getsockname()[1])


def environment(failure: str, amqp_url: str, postgres: str, port: int, folder: Path) -> dict[str, str]:
    """The settings that bring this failure about, on a broker and a store that otherwise work."""
    users = folder / "users.json"
    Users.load(users, missing_ok=True).add("ann", "operator", "a-long-password")
    parts, pg = urlsplit(amqp_url), urlsplit(postgres)
    env = {
        "RENEWALS_AMQP_URL": amqp_url,
        "RENEWALS_STORE_URL": f"sqlite:///{folder / 'store.db'}",
        "RENEWALS_CONSOLE_USERS": str(users),
        "RENEWALS_LOG_FORMAT": "json",
    }
    changed = {
        "broker unreachable": {"RENEWALS_AMQP_URL": f"amqp://guest:guest@127.0.0.1:{port}/"},
        "login refused": {
            "RENEWALS_AMQP_URL": parts._replace(
                netloc=f"guest:wrong-pw@{parts.hostname}:{parts.port}"
            ).geturl()
        },
        "vhost missing": {"RENEWALS_AMQP_URL": parts._replace(path="/renewals-no-such-vhost").geturl()},
        "database missing (SQLite)": {"RENEWALS_STORE_URL": f"sqlite:///{folder / 'typo.db'}"},
        "not a store (SQLite)": {"RENEWALS_STORE_URL": f"sqlite:///{folder / 'notes.txt'}"},
        "store damaged (SQLite)": {"RENEWALS_STORE_URL": f"sqlite:///{folder / 'damaged.db'}"},
        "database missing (PostgreSQL)": {
            "RENEWALS_STORE_URL": pg._replace(path="/renewals_no_such_database").geturl()
        },
        "store refused": {
            "RENEWALS_STORE_URL": pg._replace(
                netloc=f"renewals_nobody:pw@{pg.hostname}:{pg.port or 5432}"
            ).geturl()
        },
        "store of a later release": {},
        "setting invalid": {"RENEWALS_PREFETCH": "70000"},
        "port taken": {"RENEWALS_METRICS_PORT": str(port), "RENEWALS_METRICS_HOST": "127.0.0.1"},
        "console closed": {"RENEWALS_CONSOLE_USERS": ""},
        "users file unset": {"RENEWALS_CONSOLE_USERS": ""},
        "users file invalid": {},
        "topology not declared": {},  # the test's own vhost holds nothing yet
    }[failure]
    if failure == "users file invalid":
        users.write_text("{}")
    if failure == "not a store (SQLite)":
        not_a_store(folder / "notes.txt")
    if failure == "store damaged (SQLite)":
        damaged_store(folder / "damaged.db")
    if failure == "store of a later release":
        later = open_store(env["RENEWALS_STORE_URL"])
        later.migrate()
        with later.transaction():
            later.execute(
                "INSERT INTO schema_version VALUES (?, 'a later release', 0)", (SCHEMA_VERSION + 1,)
            )
        later.close()
    return {**env, **changed}


def told(command: tuple[str, ...], env: dict[str, str], folder: Path) -> tuple[int, str, str]:
    """The exit status, the one error line and all the output; `run` is a real process (signals,
    ports) whose failures after start are its one `worker.cannot_start` log line."""
    if command[0] != "run":
        result = CliRunner().invoke(main, list(command), env=env, input="a-long-password-2\n")
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
        return result.exit_code, lines[0].removeprefix("Error: "), result.output
    finished = subprocess.run(
        [sys.executable, "-m", "worker", "run"],
        env={**os.environ, **env},
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    output = finished.stdout + finished.stderr
    assert "Traceback" not in output
    if finished.stderr.startswith("Error: "):
        [line] = finished.stderr.strip().splitlines()
        return finished.returncode, line.removeprefix("Error: "), output
    records = [json.loads(line) for line in finished.stderr.splitlines()]
    [error] = [record for record in records if record["level"] not in ("debug", "info")]
    assert error["event"] == "worker.cannot_start", error
    return finished.returncode, str(error["error"]), output


@pytest.mark.parametrize(("command", "failure"), TABLE, ids=named(TABLE))
def test_each_command_tells_each_failure_with_its_status_and_one_wording(
    command: tuple[str, ...],
    failure: str,
    postgres: str,
    closed_port: int,
    taken_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command exits with the failure's status from the table, in one line holding its wording."""
    assert_told(
        command,
        failure,
        f"amqp://guest:guest@127.0.0.1:{closed_port}/",
        postgres,
        closed_port,
        taken_port,
        tmp_path,
        monkeypatch,
    )


@pytest.mark.parametrize(("command", "failure"), BROKER_TABLE, ids=named(BROKER_TABLE))
def test_each_command_tells_each_failure_of_a_broker_that_answers(
    command: tuple[str, ...],
    failure: str,
    amqp_url: str,
    postgres: str,
    closed_port: int,
    taken_port: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker that answers, then refuses us or lacks the topology: the status and the one wording."""
    assert_told(command, failure, amqp_url, postgres, closed_port, taken_port, tmp_path, monkeypatch)


def assert_told(
    command: tuple[str, ...],
    failure: str,
    amqp_url: str,
    postgres: str,
    closed_port: int,
    taken_port: int,
    folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(folder)
    port = closed_port if failure == "broker unreachable" else taken_port
    if command == ("console",):  # a free port, but for the failure of a port taken
        command = (*command, "--port", str(taken_port if failure == "port taken" else closed_port))
    env = environment(failure, amqp_url, postgres, port, folder)
    status, line, output = told(command, env, folder)
    expected = FAILURES[failure]
    broker = amqp_url.replace("guest:guest@", "guest:***@")
    wording = expected.wording.format(
        port=port,
        store=folder / "typo.db",
        damaged=folder / "damaged.db",
        users=folder / "users.json",
        broker=broker,
    )
    assert (status, wording in line) == (expected.status, True), line
    assert "wrong-pw" not in output
