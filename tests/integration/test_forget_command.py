"""`renewals forget` against real stores, SQLite and PostgreSQL: a preview, the erasure with
--yes, and one line with the CLI's exit status for each operator's mistake."""

import json
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result

from events import Contact
from worker.cli import main
from worker.exits import EX_CONFIG, EX_FAILED
from worker.store import open_store


def renewals(store_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["forget", *args], env={"RENEWALS_STORE_URL": store_url})


@pytest.fixture
def address(store_url: str) -> Iterator[str]:
    """A migrated store whose projection holds one client's decision maker, at this address."""
    email = f"dora.{uuid.uuid4().hex[:8]}@example.com"
    store = open_store(store_url)
    store.migrate()
    with store.writing():
        store.execute(
            "INSERT INTO decision_makers VALUES ('client-1', ?, 1, 'e-1')",
            (Contact(email=email, name="Dora").model_dump_json(),),
        )
    store.close()
    yield email


def test_without_yes_it_previews_and_with_yes_it_erases(store_url: str, address: str) -> None:
    """The preview names the table and what it would do, and what the store cannot reach; --yes --json erases and says so; a second preview finds nothing and names the first erasure."""
    shown = renewals(store_url, "--email", address)
    assert shown.exit_code == 0, shown.output
    assert "a preview: nothing changed" in shown.output and "decision_makers  deleted  1" in shown.output
    assert "the dead-letter queue renewals.worker.dlq" in shown.output and "backups" in shown.output
    done = renewals(store_url, "--email", address, "--yes", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["erased"] is True and report["tables"] == {"decision_makers": {"deleted": 1}}
    assert address not in done.stdout
    again = json.loads(renewals(store_url, "--email", address, "--json").stdout)
    assert again["tables"] == {} and again["erased_before"][0]["operation_id"] == report["operation_id"]


@pytest.mark.parametrize(
    ("args", "wording"),
    [
        ((), "say whose data to erase: --client CLIENT or --email ADDRESS (one of them)"),
        (("--client", "c-1", "--email", "a@example.com"), "say whose data to erase"),
        (("--email", "not-an-address"), "'not-an-address' is not an e-mail address"),
        (("--email", "a@example.com", "--partner", "acme"), "--partner goes with --client"),
    ],
)
def test_an_operator_s_mistake_is_one_line_with_exit_2(
    store_url: str, address: str, args: tuple[str, ...], wording: str
) -> None:
    """Neither or both of --client and --email, an address that is not one, --partner with an address: one line naming the fix, exit 2, nothing erased."""
    result = renewals(store_url, *args)
    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("Error: ") and wording in line
    assert renewals(store_url, "--email", address, "--json").exit_code == 0


def test_a_store_not_migrated_is_one_line_with_exit_78(store_url: str) -> None:
    """A store at an older schema (here: empty) is not erased from: one line naming `renewals store migrate`, exit 78."""
    open_store(store_url).close()
    result = renewals(store_url, "--client", "c-1")
    assert result.exit_code == EX_CONFIG
    [line] = result.output.strip().splitlines()
    assert "run `renewals store migrate`" in line


def test_a_pending_notification_is_one_line_with_exit_1(store_url: str, address: str) -> None:
    """A notification naming the address waits in the outbox: --yes refuses in one line (exit 1) that says to let a worker publish it first."""
    store = open_store(store_url)
    with store.writing():
        store.execute(
            "INSERT INTO outbox (notification_id, correlation_id, routing_key, body, created_at_us)"
            " VALUES ('n-1', 'c-1', 'renewal.notification', ?, 1)",
            (json.dumps({"to": [address]}).encode(),),
        )
    store.close()
    result = renewals(store_url, "--email", address, "--yes")
    assert result.exit_code == EX_FAILED
    [line] = result.output.strip().splitlines()
    assert "1 notification naming them still waits in the outbox" in line and "start a worker" in line
