"""Ledger rows as the worker's batch writes them (migration 6's `reminder_ledger` and
`owner_history`), for tests and the docs' sample output: realistic defaults, any column
overridden, written straight into a store with SQL."""

import uuid
from datetime import UTC, datetime
from typing import Any

from worker.store import SqlStore

AT = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
AT_US = int(AT.timestamp()) * 1_000_000
MINUTE_US = 60_000_000

REMINDER_DEFAULTS: dict[str, Any] = {
    "event_id": "evt-r1",
    "partner_id": "acme",
    "client_id": "globex",
    "renewal_date": "2026-10-31",
    "days_until_renewal": 30,
    "handled_at_us": AT_US,
    "outcome": "notified",
    "reason": None,
    "rule_row": 1,
    "resolved_from": "partner_default",
    "fallback": None,
    "to_address": "dora@globex.example",
    "cc_address": "alice@acme.example",
    "owner": "platform",
    "owner_scope": "partner",
    "owner_event_id": "e-17",
    "owner_changed_at_us": AT_US - 30 * 24 * 60 * MINUTE_US,
    "decision_maker": "dora@globex.example",
    "decision_maker_event_id": "evt-r0",
    "notification_id": None,
    "letter_id": None,
    "replay_operation": None,
    "detail": None,
}

CHANGE_DEFAULTS: dict[str, Any] = {
    "partner_id": "acme",
    "client_id": "",
    "owner_before": None,
    "contact_before": None,
    "owner_after": "platform",
    "contact_after": "alice@acme.example",
    "event_id": "e-17",
    "changed_at_us": AT_US,
    "received_at_us": AT_US + 2_000_000,
    "won": 1,
    "lost_to_event_id": None,
}


def reminder(**fields: Any) -> dict[str, Any]:
    """A reminder_ledger row: the defaults (rule row 1, notified and confirmed) with `fields`;
    a notified row gets a notification id of its own, published a millisecond and confirmed five
    after it was handled, unless given others."""
    row = {**REMINDER_DEFAULTS, **fields}
    notified = row["outcome"] == "notified"
    if notified and row["notification_id"] is None:
        row["notification_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{row['client_id']}/{row['event_id']}"))
    row.setdefault("published_at_us", row["handled_at_us"] + 1_000 if notified else None)
    row.setdefault("confirmed_at_us", row["handled_at_us"] + 5_000 if notified else None)
    return row


def change(**fields: Any) -> dict[str, Any]:
    """An owner_history row: the defaults (acme's partner-wide platform default, won) with `fields`."""
    return {**CHANGE_DEFAULTS, **fields}


def write(store: SqlStore, table: str, rows: list[dict[str, Any]]) -> None:
    """Insert the rows into `table` (reminder_ledger or owner_history), in one transaction."""
    with store.transaction():
        for row in rows:
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            store.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", list(row.values()))
