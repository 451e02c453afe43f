"""An operator's mistake, through the real `renewals run` process: one line that names the
setting and the fix, the documented exit status (78 for a setting that cannot work, 77 for a
broker or database that refuses us), never a traceback and never an endless retry.
test_failure_table.py holds the same failures for every other command."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from support.client import Client
from worker.exits import EX_CONFIG, EX_REFUSED
from worker.settings import Settings

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here


def run_worker(env: dict[str, str], folder: Path, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
    """`renewals run` with these settings (JSON logs), which must end by itself."""
    return subprocess.run(
        [sys.executable, "-m", "worker", "run"],
        env={**os.environ, "RENEWALS_LOG_FORMAT": "json", **env},
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


BAD_VALUES = [
    ("AMQP_URL", "http://x", ["amqp://"]),
    ("AMQP_URL", "amqp://guest:s3cret@host:notaport/", ["amqp://"]),
    ("STORE_URL", "mysql://x/y", ["sqlite:///", "postgresql://"]),
    ("STORE_URL", "sqlite:///", ["path is missing", "sqlite:///renewals.db"]),
    ("STORE_URL", "sqlite://", ["path is missing", "sqlite:///renewals.db"]),
    ("RETRY_DELAYS", "1,10", ["JSON list", "[1, 10, 60]"]),
    ("RETRY_DELAYS", "[-1]", ["at least 0.001", "[1, 10, 60]"]),
    ("RETRY_DELAYS", "[]", ["at least 1 item"]),
    ("PREFETCH", "70000", ["65535", "default (1000)"]),
    ("PREFETCH", "0", ["greater than or equal to 1"]),
    ("HEARTBEAT", "70000", ["65535"]),
    ("INBOX_RETENTION_DAYS", "1000000", ["36500"]),
    ("REMINDER_RETENTION_DAYS", "1e9", ["36500"]),
    ("STORE_LOCK_TIMEOUT", "1e10", ["2147483"]),
    ("STORE_STATEMENT_TIMEOUT", "1e10", ["2147483"]),
    ("SHUTDOWN_GRACE", "1e12", ["less than or equal"]),
    ("OUTBOX_GRACE", "1e12", ["less than or equal"]),
    ("MAX_CLOCK_SKEW", "1e12", ["less than or equal"]),
    ("BATCH_MAX_WAIT_MS", "1e15", ["less than or equal"]),
    ("QUEUE_TYPE", "stream", ["'quorum' or 'classic'"]),
    ("QUEUE", "amq.worker", ["reserved"]),
    ("QUEUE", "amq.worker\nsecond line", ["reserved", "amq.worker\\nsecond line"]),
    ("QUEUE", "", ["a name is needed"]),
    ("DEAD_LETTER_QUEUE", "d" * 256, ["255 bytes"]),
    ("METRICS_PORT", "70000", ["65535"]),
    ("LOG_LEVEL", "loud", ["'debug', 'info', 'warning' or 'error'"]),
]


@pytest.mark.parametrize(
    ("setting", "value", "fix"), BAD_VALUES, ids=[f"{s}={v[:20]}" for s, v, _ in BAD_VALUES]
)
def test_a_bad_setting_is_one_line_and_exit_78_before_anything_opens(
    setting: str, value: str, fix: list[str], amqp_url: str, tmp_path: Path
) -> None:
    """Each bad value: exit 78, nothing on stdout, one line on stderr naming the setting and what
    to write instead, no traceback, no password, and no store file created."""
    env = {"RENEWALS_AMQP_URL": amqp_url, "RENEWALS_STORE_URL": "sqlite:///renewals.db"}
    finished = run_worker({**env, f"RENEWALS_{setting}": value}, tmp_path)
    assert finished.returncode == EX_CONFIG, finished.stderr
    lines = finished.stderr.splitlines()
    assert len(lines) == 1, finished.stderr
    assert lines[0].startswith(f"Error: RENEWALS_{setting}="), lines[0]
    assert all(words in lines[0] for words in fix), lines[0]
    assert "Traceback" not in finished.stderr and "s3cret" not in finished.stderr
    assert finished.stdout == ""
    assert not (tmp_path / "renewals.db").exists()


def test_the_documented_examples_are_what_the_worker_prints(amqp_url: str, tmp_path: Path) -> None:
    """The error lines quoted in the README and in docs/configuration.md are the worker's own."""
    root = Path(__file__).resolve().parents[2]
    readme = " ".join((root / "README.md").read_text().split())
    configuration = (root / "docs" / "configuration.md").read_text()
    for setting, value, document in (
        ("RETRY_DELAYS", "1,10", readme),
        ("PREFETCH", "70000", configuration),
    ):
        finished = run_worker({"RENEWALS_AMQP_URL": amqp_url, f"RENEWALS_{setting}": value}, tmp_path)
        line = finished.stderr.strip()
        assert line.startswith("Error: ") and line.removeprefix("Error: ") in document, line


def error_lines(stderr: str) -> list[dict[str, object]]:
    """The log lines above info level (every line is JSON)."""
    records = [json.loads(line) for line in stderr.splitlines()]
    return [record for record in records if record["level"] not in ("debug", "info")]


def assert_one_error(finished: subprocess.CompletedProcess[str], status: int, *words: str) -> str:
    assert finished.returncode == status, finished.stderr
    assert "Traceback" not in finished.stderr
    errors = error_lines(finished.stderr)
    assert len(errors) == 1 and errors[0]["event"] == "worker.cannot_start", errors
    line = str(errors[0]["error"])
    assert all(word in line for word in words), line
    return line


def test_a_metrics_port_in_use_is_one_line_and_exit_78(amqp_url: str, tmp_path: Path) -> None:
    """Another program on RENEWALS_METRICS_PORT: the worker says which port and what to do."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = run_worker(
            {
                "RENEWALS_AMQP_URL": amqp_url,
                "RENEWALS_STORE_URL": "sqlite:///renewals.db",
                "RENEWALS_METRICS_PORT": str(port),
                "RENEWALS_METRICS_HOST": "127.0.0.1",
            },
            tmp_path,
        )
    assert_one_error(finished, EX_CONFIG, f"RENEWALS_METRICS_PORT={port}", "in use", "choose a free port")


@pytest.mark.parametrize(("existing", "asked"), [("quorum", "classic"), ("classic", "quorum")])
def test_a_queue_of_the_other_type_names_the_setting_that_would_match(
    existing: str, asked: str, amqp_url: str, client: Client, tmp_path: Path
) -> None:
    """QUEUE_TYPE=classic where quorum queues exist (or the reverse): exit 78 and one line naming
    the setting that would match what the broker holds, never the one already set."""
    from worker.broker.topology import BrokerVersion, topology

    version = BrokerVersion.parse(client.connection._impl.server_properties["version"])
    for queue in topology(Settings(queue_type=existing), version).queues:
        client.channel.queue_declare(queue.name, durable=True, arguments=queue.arguments)
    finished = run_worker(
        {
            "RENEWALS_AMQP_URL": amqp_url,
            "RENEWALS_STORE_URL": "sqlite:///renewals.db",
            "RENEWALS_QUEUE_TYPE": asked,
        },
        tmp_path,
    )
    line = assert_one_error(
        finished, EX_CONFIG, f"RENEWALS_QUEUE_TYPE={existing}", f"exists as a {existing} queue"
    )
    assert f"RENEWALS_QUEUE_TYPE={asked}" not in line


def test_a_wrong_password_stops_with_77_instead_of_retrying(amqp_url: str, tmp_path: Path) -> None:
    """A password the broker refuses is not an outage: one line naming the fix, exit 77, at once."""
    parts = urlsplit(amqp_url)
    wrong = parts._replace(netloc=f"guest:wrong-pw@{parts.hostname}:{parts.port or 5672}").geturl()
    finished = run_worker(
        {"RENEWALS_AMQP_URL": wrong, "RENEWALS_STORE_URL": "sqlite:///renewals.db"}, tmp_path
    )
    line = assert_one_error(
        finished, EX_REFUSED, "refused the login", "user and password in RENEWALS_AMQP_URL"
    )
    assert "wrong-pw" not in finished.stderr and "guest:***@" in line
    assert "broker.connection_lost" not in finished.stderr


def test_a_missing_vhost_stops_with_77_instead_of_retrying(amqp_url: str, tmp_path: Path) -> None:
    """A vhost the broker does not have: one line naming it and how to create it, exit 77."""
    missing = urlsplit(amqp_url)._replace(path="/renewals-no-such-vhost").geturl()
    finished = run_worker(
        {"RENEWALS_AMQP_URL": missing, "RENEWALS_STORE_URL": "sqlite:///renewals.db"}, tmp_path
    )
    assert_one_error(finished, EX_REFUSED, "renewals-no-such-vhost", "refused the vhost", "add_vhost")
    assert "broker.connection_lost" not in finished.stderr


def test_a_missing_database_stops_with_77_instead_of_retrying(
    amqp_url: str, postgres: str, tmp_path: Path
) -> None:
    """A PostgreSQL database that does not exist is not an outage: one line, exit 77, and the
    store is never waited for."""
    missing = urlsplit(postgres)._replace(path="/renewals_no_such_database").geturl()
    finished = run_worker({"RENEWALS_AMQP_URL": amqp_url, "RENEWALS_STORE_URL": missing}, tmp_path)
    assert_one_error(
        finished, EX_REFUSED, 'database "renewals_no_such_database" does not exist', "RENEWALS_STORE_URL"
    )
    assert "store.unavailable" not in finished.stderr


def test_an_unknown_database_user_stops_with_77(amqp_url: str, postgres: str, tmp_path: Path) -> None:
    """A PostgreSQL role that does not exist (an authentication failure): one line, exit 77."""
    parts = urlsplit(postgres)
    stranger = parts._replace(netloc=f"renewals_nobody:pw@{parts.hostname}:{parts.port or 5432}").geturl()
    finished = run_worker({"RENEWALS_AMQP_URL": amqp_url, "RENEWALS_STORE_URL": stranger}, tmp_path)
    assert_one_error(finished, EX_REFUSED, "renewals_nobody", "RENEWALS_STORE_URL")
