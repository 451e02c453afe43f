"""Running `renewals` commands against a test's vhost, and reading the dead-letter queue back."""

import json
import time
from typing import Any

from click.testing import CliRunner, Result

from support.client import NAMES, Client
from support.polling import wait_until
from support.records import stored_letters
from worker.cli import main


def renewals(amqp_url: str, *args: str, **env: str) -> Result:
    """`renewals ARGS` in this process, configured for the test's vhost (JSON logs on stderr)."""
    settings = {"RENEWALS_AMQP_URL": amqp_url, "RENEWALS_LOG_FORMAT": "json", **env}
    return CliRunner().invoke(main, list(args), env=settings)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, f"exit {result.exit_code}:\n{result.output}\n{result.exception!r}"
    return result


def failed(result: Result) -> str:
    """The one error line of a command that had to fail (log lines, JSON, aside)."""
    assert result.exit_code == 1, f"exit {result.exit_code}:\n{result.output}"
    lines = [line for line in result.stderr.strip().splitlines() if not line.startswith("{")]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def dead_letters(amqp_url: str, *filters: str, **env: str) -> list[dict[str, Any]]:
    """`renewals dlq list --json --oldest-first` (arrival order, as the queue had them), parsed."""
    result = ok(renewals(amqp_url, "dlq", "list", "--json", "--oldest-first", *filters, **env))
    rows: list[dict[str, Any]] = json.loads(result.stdout)
    return rows


def ids(amqp_url: str, *filters: str) -> list[str | None]:
    return [row["id"] for row in dead_letters(amqp_url, *filters)]


def audit_lines(result: Result, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("event") == event]


def wait_for_dead_letters(client: Client, count: int, store_url: str) -> None:
    """Until the worker has recorded `count` dead letters (any state) and the dead-letter queue,
    their transport, is empty again."""

    def enough() -> bool:
        return client.count(NAMES.dead_letter_queue) == 0 and len(_recorded(store_url)) >= count

    wait_until(enough, f"{count} dead letters recorded")


def _recorded(store_url: str) -> list[Any]:
    try:
        return stored_letters(store_url)
    except Exception:  # the worker has not created its store yet
        return []


def drain(client: Client, queue: str, settle: float = 1.0, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every message on `queue` until none came for `settle` seconds (at most `timeout`), as
    parsed JSON bodies."""
    bodies = []
    quiet_since = deadline = time.monotonic()
    deadline += timeout
    while time.monotonic() - quiet_since < settle and time.monotonic() < deadline:
        method, _, body = client.channel.basic_get(queue, auto_ack=True)
        if method is None:
            time.sleep(0.02)
        else:
            bodies.append(json.loads(body))
            quiet_since = time.monotonic()
    return bodies


def causes(notifications: list[dict[str, Any]]) -> list[str]:
    return [notification["data"]["causation_id"] for notification in notifications]
