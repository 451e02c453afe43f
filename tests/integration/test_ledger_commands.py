"""`renewals reminders` and `renewals owners history` over real stores, SQLite and PostgreSQL:
the filters, newest first and paging, the JSON, won and lost changes, a store without rows, a
bad WHEN and a store not migrated to the ledger."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from support.ledger_rows import AT_US, MINUTE_US, change, reminder, sample, write
from worker.cli import main
from worker.exits import EX_CONFIG
from worker.ledger.questions import ReminderQuery, reminders
from worker.store import SCHEMA_VERSION, SqlStore, open_store

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


@pytest.fixture
def store(store_url: str) -> SqlStore:
    opened = open_store(store_url)
    opened.migrate()
    return opened


def renewals(store_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, list(args), env={"RENEWALS_STORE_URL": store_url})


def as_json(store_url: str, *args: str) -> Any:
    result = renewals(store_url, *args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def a_month(store: SqlStore) -> None:
    """Globex's three reminders at acme, one of initech's, and one of globex under another partner."""
    write(
        store,
        "reminder_ledger",
        [
            reminder(event_id="g-30", handled_at_us=AT_US),
            reminder(
                event_id="i-30",
                client_id="initech",
                to_address="ivan@initech.example",
                handled_at_us=AT_US + MINUTE_US,
            ),
            reminder(
                event_id="g-7",
                days_until_renewal=7,
                handled_at_us=AT_US + 2 * MINUTE_US,
                outcome="no_notification",
                reason="partner_handles",
                owner="partner",
                resolved_from="client_override",
                owner_scope="client",
                owner_event_id="e-9",
                rule_row=None,
                to_address=None,
                cc_address=None,
            ),
            reminder(
                event_id="g-1",
                days_until_renewal=1,
                handled_at_us=AT_US + 3 * MINUTE_US,
                cc_address="bob@acme.example",
            ),
            reminder(
                event_id="g-other",
                partner_id="umbrella",
                handled_at_us=AT_US + 4 * MINUTE_US,
                cc_address=None,
            ),
        ],
    )


def events(found: dict[str, Any]) -> list[str]:
    return [row["event_id"] for row in found["reminders"]]


def test_a_clients_reminders_come_newest_first_with_their_decisions(store_url: str, store: SqlStore) -> None:
    """--client lists that client's reminders under every partner, newest first, each decision in words and its delivery."""
    a_month(store)
    assert events(as_json(store_url, "reminders", "--client", "globex")) == ["g-other", "g-1", "g-7", "g-30"]
    table = renewals(store_url, "reminders", "--client", "globex", "--partner", "acme")
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "seq",
        "handled",
        "at",
        "event",
        "renewal",
        "days",
        "decision",
        "notification",
    ]
    assert [line.split()[2] for line in lines[2:]] == ["g-1", "g-7", "g-30"]
    assert "no notification: the partner handles it (partner override for globex at acme" in lines[3]
    assert (
        "platform default of acme since 2026-09-01 09:00 UTC (event e-17): to the decision maker"
        " dora@globex.example, copy alice@acme.example" in lines[4]
    )
    assert lines[4].rstrip().endswith("confirmed 2026-10-01 09:00 UTC")
    assert "@" not in table.stderr  # addresses go to the operator's terminal, never to a log line


def test_the_filters_combine_partner_recipient_and_dates(store_url: str, store: SqlStore) -> None:
    """--partner, a recipient as to or cc, and --since/--until each narrow the list; together they AND."""
    a_month(store)
    assert events(as_json(store_url, "reminders", "--client", "globex", "--partner", "umbrella")) == [
        "g-other"
    ]
    since = "2026-10-01T09:02:00Z"
    assert events(as_json(store_url, "reminders", "--client", "globex", "--since", since)) == [
        "g-other",
        "g-1",
        "g-7",
    ]
    assert events(
        as_json(
            store_url,
            "reminders",
            "--client",
            "globex",
            "--since",
            since,
            "--until",
            "2026-10-01T09:04:00+00:00",
        )
    ) == ["g-1", "g-7"]
    by_cc = reminders(store, ReminderQuery(recipient="bob@acme.example"))
    assert [r.event_id for r in by_cc.reminders] == ["g-1"]
    by_to = reminders(store, ReminderQuery(recipient="ivan@initech.example"))
    assert [r.event_id for r in by_to.reminders] == ["i-30"]
    both = reminders(store, ReminderQuery(recipient="alice@acme.example", partner_id="acme"))
    assert [r.event_id for r in both.reminders] == ["i-30", "g-30"]
    one = reminders(store, ReminderQuery(recipient="alice@acme.example", client_id="globex"))
    assert [r.event_id for r in one.reminders] == ["g-30"]
    assert reminders(store, ReminderQuery(recipient="ALICE@acme.example")).reminders == []  # as written


def test_pages_follow_next_before_to_the_end_each_reminder_once(store_url: str, store: SqlStore) -> None:
    """120 reminders in pages of 50, newest first: --before the last seq shown gives the next page, each row once."""
    write(
        store,
        "reminder_ledger",
        [reminder(event_id=f"evt-{n:03}", handled_at_us=AT_US + n * MINUTE_US) for n in range(120)],
    )
    seen: list[str] = []
    before: list[str] = []
    pages = 0
    while True:
        page = as_json(store_url, "reminders", "--client", "globex", "--limit", "50", *before)
        seen += events(page)
        pages += 1
        if page["next_before"] is None:
            break
        before = ["--before", str(page["next_before"])]
    assert pages == 3 and len(seen) == 120 and len(set(seen)) == 120
    assert seen == [f"evt-{n:03}" for n in reversed(range(120))]
    first = renewals(store_url, "reminders", "--client", "globex", "--limit", "50")
    assert first.stdout.rstrip().endswith(f"older: --before {seen_seq(store, 'evt-070')}")


def seen_seq(store: SqlStore, event_id: str) -> int:
    [row] = store.execute("SELECT seq FROM reminder_ledger WHERE event_id = ?", (event_id,)).fetchall()
    return int(row[0])


def test_the_json_is_the_documented_shape(store_url: str, store: SqlStore) -> None:
    """--json gives {reminders, next_before}, each reminder with its decision, owner, decision maker and notification."""
    a_month(store)
    found = as_json(store_url, "reminders", "--client", "initech")
    assert found["next_before"] is None
    [one] = found["reminders"]
    assert one["to"] == "ivan@initech.example" and one["cc"] == "alice@acme.example"
    assert one["notification"]["confirmed_at"] == "2026-10-01T09:01:00+00:00"
    assert one["owner"] == {
        "owner": "platform",
        "scope": "partner",
        "event_id": "e-17",
        "changed_at": "2026-09-01T09:00:00+00:00",
    }
    assert one["rule_row"] == 1 and one["days_until_renewal"] == 30 and isinstance(one["seq"], int)


def test_owner_history_shows_won_and_lost_changes_latest_first(store_url: str, store: SqlStore) -> None:
    """A late OwnerChanged appears as lost to the event that beat it; --client adds the partner-wide changes to its own."""
    write(
        store,
        "owner_history",
        [
            change(event_id="e-17", changed_at_us=AT_US),
            change(
                event_id="e-16",
                changed_at_us=AT_US - MINUTE_US,
                owner_after="partner",
                won=0,
                lost_to_event_id="e-17",
            ),
            change(
                event_id="e-9", client_id="globex", owner_after="partner", changed_at_us=AT_US + MINUTE_US
            ),
            change(
                event_id="e-5",
                client_id="initech",
                owner_after="partner",
                changed_at_us=AT_US + 2 * MINUTE_US,
            ),
            change(event_id="x-1", partner_id="umbrella"),
        ],
    )
    every = as_json(store_url, "owners", "history", "--partner", "acme")
    assert [c["event_id"] for c in every["changes"]] == ["e-5", "e-9", "e-17", "e-16"]
    lost = every["changes"][3]
    assert (
        lost["won"] is False
        and lost["lost_to_event_id"] == "e-17"
        and lost["outcome"] == "lost to event e-17"
    )
    globex = as_json(store_url, "owners", "history", "--partner", "acme", "--client", "globex")
    assert [(c["event_id"], c["scope"]) for c in globex["changes"]] == [
        ("e-9", "client"),
        ("e-17", "partner"),
        ("e-16", "partner"),
    ]
    table = renewals(
        store_url, "owners", "history", "--partner", "acme", "--client", "globex"
    ).stdout.splitlines()
    assert table[0].split() == ["changed", "at", "received", "at", "client", "event", "change", "outcome"]
    assert "globex" in table[2] and "(none) → partner with contact alice@acme.example" in table[2]
    assert table[4].rstrip().endswith("lost to event e-17") and "(partner-wide)" in table[4]


def test_a_store_without_ledger_rows_says_so(store_url: str, store: SqlStore) -> None:
    """No rows: one line saying nothing was found (exit 0), and empty lists in JSON."""
    result = renewals(store_url, "reminders", "--client", "globex", "--since", "7d")
    assert result.exit_code == 0 and result.stdout.startswith(
        "no reminder in the ledger for client globex, since "
    )
    assert as_json(store_url, "reminders", "--client", "globex") == {"reminders": [], "next_before": None}
    history = renewals(store_url, "owners", "history", "--partner", "acme", "--client", "globex")
    assert (
        history.exit_code == 0
        and history.stdout == "no owner change in the history for partner acme, client globex\n"
    )
    assert as_json(store_url, "owners", "history", "--partner", "acme")["changes"] == []


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "5 weeks"])
def test_a_bad_when_is_one_line_naming_the_forms(store_url: str, store: SqlStore, since: str) -> None:
    """A --since that is neither ISO nor an age: usage error (exit 2) whose line names both forms."""
    result = renewals(store_url, "reminders", "--client", "globex", "--since", since)
    assert result.exit_code == 2
    assert result.output.splitlines()[-1] == (
        f"Error: Invalid value for '--since': {since!r} is neither an ISO 8601 time nor an age like 15m, 2h, 7d"
    )


@pytest.mark.parametrize(
    "command", [("reminders", "--client", "globex"), ("owners", "history", "--partner", "acme")]
)
def test_a_store_before_the_ledger_is_the_one_line_to_migrate(
    store_url: str, store: SqlStore, command: tuple[str, ...]
) -> None:
    """A store at schema version 5: exit 78 with the store's one line naming `renewals store migrate`."""
    with store.transaction():
        store.execute("DELETE FROM schema_version WHERE version = ?", (SCHEMA_VERSION,))
    result = renewals(store_url, *command)
    assert result.exit_code == EX_CONFIG
    [line] = result.output.strip().splitlines()
    assert line.startswith(
        f"Error: the store's schema is version {SCHEMA_VERSION - 1}, older than version {SCHEMA_VERSION}"
    )
    assert "run `renewals store migrate`" in line


def test_the_operations_doc_shows_the_commands_real_output(tmp_path: Path) -> None:
    """Each `$ renewals reminders` / `$ renewals owners history` in docs/operations.md prints, over the sample month, what the doc shows."""
    store_url = f"sqlite:///{tmp_path / 'renewals.db'}"
    store = open_store(store_url)
    store.migrate()
    reminders_, changes = sample()
    write(store, "reminder_ledger", reminders_)
    write(store, "owner_history", changes)
    shown = re.findall(
        r"^\$ renewals ((?:reminders|owners history) .*)\n((?:(?!```).+\n)+)", DOC.read_text(), re.MULTILINE
    )
    assert len(shown) == 3
    for command, output in shown:
        result = renewals(store_url, *command.split())
        assert result.exit_code == 0, result.output
        assert result.stdout == output, command


def test_newest_means_handled_last_even_when_rows_were_written_out_of_order(
    store_url: str, store: SqlStore
) -> None:
    """Rows written in another order than handled (two workers): pages of 2 follow the handled time, each row once."""
    minutes = [5, 1, 4, 2, 3, 4]  # the sixth ties with the third: the later row comes first
    write(
        store,
        "reminder_ledger",
        [reminder(event_id=f"evt-{n}", handled_at_us=AT_US + m * MINUTE_US) for n, m in enumerate(minutes)],
    )
    seen: list[str] = []
    before: list[str] = []
    while True:
        page = as_json(store_url, "reminders", "--client", "globex", "--limit", "2", *before)
        seen += events(page)
        if page["next_before"] is None:
            break
        before = ["--before", str(page["next_before"])]
    assert seen == ["evt-0", "evt-5", "evt-2", "evt-4", "evt-3", "evt-1"]
