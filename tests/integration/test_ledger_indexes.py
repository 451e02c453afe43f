"""Every index the reminder ledger keeps serves a question the product asks, and no question
scans the table (the unfiltered page reads the time index in its order, and stops at the page's
end). An index written at a random place costs every batch (issue 30), so one that nothing reads
is dead weight, and one that a question needs must not go. The questions are the product's own
(`worker.ledger.questions`, the confirm stamp), captured as they run and then explained by
SQLite's query planner."""

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.ledger.questions import ReminderQuery, reminders
from worker.store import open_store
from worker.store.connection import Direct
from worker.store.ledger_writes import Confirmed


class Captured(Direct):
    """The statements that touch the ledger, with their parameters, run as usual."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Sequence[Any]]] = []

    def execute(self, connection: Any, statement: str, params: Sequence[Any]) -> Any:
        if "reminder_ledger" in statement:
            self.statements.append((statement, params))
        return super().execute(connection, statement, params)

    def execute_many(self, connection: Any, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = list(rows)
        if "reminder_ledger" in statement and not statement.startswith("INSERT"):
            self.statements += [(statement, row) for row in rows]
        super().execute_many(connection, statement, rows)


def plan(store: Any, statement: str, params: Sequence[Any]) -> list[str]:
    return [row[-1] for row in store.execute("EXPLAIN QUERY PLAN " + statement, params).fetchall()]


def test_each_ledger_index_serves_a_question_and_no_question_scans_the_ledger(tmp_path: Path) -> None:
    captured = Captured()
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}", runner=lambda _kind: captured)
    store.migrate()
    captured.statements.clear()  # the migrations'
    since = datetime(2026, 1, 1, tzinfo=UTC)
    for query in (
        ReminderQuery(client_id="c1"),
        ReminderQuery(client_id="c1", partner_id="p1", since=since),
        ReminderQuery(partner_id="p1"),
        ReminderQuery(recipient="dora@client.example"),
        ReminderQuery(),  # the console's Reminders page as it opens
        ReminderQuery(since=since),
    ):
        reminders(store, query)
    reminders(store, ReminderQuery(), before=1)  # the next page
    store.delete_confirmed([Confirmed(1, 10, 20)])  # stamps the ledger rows its notification caused
    asked, captured.statements = captured.statements, []
    assert len(asked) == 8

    used: set[str] = set()
    for statement, params in asked:
        steps = [step for step in plan(store, statement, params) if "reminder_ledger" in step]
        # A question with a condition searches an index; the unfiltered page reads the time
        # index in its order and stops at the page's end (never the table, never a sort of it).
        ordered = "WHERE" not in statement and steps == [
            "SCAN reminder_ledger USING INDEX reminder_ledger_handled"
        ]
        assert steps and (ordered or not any(step.startswith("SCAN") for step in steps)), (statement, steps)
        used |= {name for step in steps for name in re.findall(r"USING (?:COVERING )?INDEX (\w+)", step)}
    kept = {
        name
        for (name,) in store.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'reminder_ledger'"
            " AND sql IS NOT NULL"
        ).fetchall()
    }
    assert kept == used, f"kept but never used: {kept - used}; used: {used}"
