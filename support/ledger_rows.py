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


def sample() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A month of acme's reminders and owner changes, one of each kind (for the docs' output and
    the console's screenshot). Acme's platform default names no contact (e-15) when globex's
    30-day reminder goes to its decision maker alone; an override (e-9) gives globex to the
    partner, whose 7-day reminder goes to the partner contact, and a duplicate of it to nobody;
    initech, with no decision maker known, is dead-lettered until acme names a contact (e-17,
    which a late change, e-16, lost to), and the replay reaches the contact."""
    day = 24 * 60 * MINUTE_US
    e15 = {"owner_event_id": "e-15", "owner_changed_at_us": AT_US - 40 * day}
    e17 = {"owner_event_id": "e-17", "owner_changed_at_us": AT_US + 19 * day}
    e9 = {"owner_event_id": "e-9", "owner_changed_at_us": AT_US + 5 * day}
    override = {"owner": "partner", "owner_scope": "client", "resolved_from": "client_override", **e9}
    nobody: dict[str, Any] = {"to_address": None, "cc_address": None, "rule_row": None}
    to_contact = {"to_address": "alice@acme.example", "cc_address": None}
    initech = {"client_id": "initech", "renewal_date": "2026-10-25", "days_until_renewal": 14}
    initech |= {"decision_maker": None, "decision_maker_event_id": None, "event_id": "evt-41c2"}
    missed = {"outcome": "no_notification", "reason": "dead_letter", "letter_id": 12, "rule_row": 4}
    duplicate = {"outcome": "no_notification", "reason": "duplicate"}
    reminders = [
        reminder(event_id="evt-3f1a", handled_at_us=AT_US, rule_row=2, cc_address=None, **e15),
        reminder(
            **initech,
            **{**nobody, **missed},
            **e15,
            handled_at_us=AT_US + 11 * day,
            detail='{"dead_letter_reason": "no_recipient"}',
        ),
        reminder(
            event_id="evt-5d07",
            days_until_renewal=7,
            handled_at_us=AT_US + 23 * day,
            rule_row=5,
            **override,
            **to_contact,
        ),
        reminder(
            event_id="evt-5d08",
            days_until_renewal=7,
            handled_at_us=AT_US + 23 * day + MINUTE_US,
            **nobody,
            **duplicate,
            notification_id="c0f3e0d2-8a61-5b44-9d0e-6f1b2a7c3e55",
            **override,
        ),
        reminder(
            **initech,
            **e17,
            handled_at_us=AT_US + 24 * day,
            rule_row=3,
            fallback="decision_maker_missing",
            letter_id=12,
            replay_operation="7c2e91a04b3d",
            **to_contact,
        ),
    ]
    changes = [
        change(
            event_id="e-15",
            contact_after=None,
            changed_at_us=AT_US - 40 * day,
            received_at_us=AT_US - 40 * day + 900_000,
        ),
        change(
            event_id="e-9",
            client_id="globex",
            owner_after="partner",
            changed_at_us=AT_US + 5 * day,
            received_at_us=AT_US + 5 * day + 1_500_000,
        ),
        change(
            event_id="e-17",
            owner_before="platform",
            changed_at_us=AT_US + 19 * day,
            received_at_us=AT_US + 19 * day + 2_000_000,
        ),
        change(
            event_id="e-16",
            owner_before="platform",
            owner_after="partner",
            changed_at_us=AT_US + 18 * day,
            received_at_us=AT_US + 20 * day,
            won=0,
            lost_to_event_id="e-17",
        ),
    ]
    return reminders, changes
