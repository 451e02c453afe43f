"""One batch's transaction: the inbox, the projection's reads and writes, the outbox insert and
crash counts. A batch is a few set-based statements: the inbox insert, one read per kind of
state, one conditional multi-row write per kind, the outbox insert. Rows are always written in
key order, so concurrent batches lock in the same order and cannot deadlock each other."""

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date

from pydantic import ValidationError

from events import Contact
from handlers import OwnerSetting, ReminderKey, SettingKey, Stamp, Versioned
from worker.store import outbox, retention
from worker.store.backend import Backend, ProjectionWrites, chunks
from worker.store.connection import SqlConnection
from worker.store.ledger_writes import Confirmed, HistoryRow, LedgerRow
from worker.store.model import OutboxRow, Written
from worker.store.projection_writes import (
    PARTNER_WIDE,
    ReportedWrites,
    reminder_values,
    setting_order,
)
from worker.store.working_set import Changes


class SqlTransaction:
    """Reads implement `working_set.StoredState`. `write` uses the backend's strategy; the
    single-kind writes (`write_settings`...) always report which rows stood."""

    def __init__(
        self, db: SqlConnection, backend: Backend, writes: ProjectionWrites, reported: ReportedWrites
    ) -> None:
        self._db = db
        self._backend = backend
        self._execute = db.execute
        self._writes = writes
        self._reported = reported

    # --- the inbox -------------------------------------------------------------------------

    def record_events(self, event_ids: Iterable[str], at_us: int) -> set[str]:
        """Add the events to the inbox; the ids that were not there yet."""
        fresh: set[str] = set()
        for chunk in chunks(sorted(set(event_ids))):
            source, params = self._backend.rows(("text", "bigint"), [(event_id, at_us) for event_id in chunk])
            rows = self._execute(
                f"INSERT INTO inbox (event_id, processed_at_us) {source}"
                " ON CONFLICT DO NOTHING RETURNING event_id",
                params,
            ).fetchall()
            fresh.update(row[0] for row in rows)
        return fresh

    def forget_events(self, event_ids: Iterable[str]) -> None:
        """Take events out of the inbox again (they failed, and must be handled when they return)."""
        for chunk in chunks(sorted(set(event_ids))):
            one_of, params = self._backend.any_of("text", chunk)
            self._execute(f"DELETE FROM inbox WHERE event_id {one_of}", params)

    # --- reads -----------------------------------------------------------------------------

    def settings(self, keys: Iterable[SettingKey]) -> dict[SettingKey, Versioned[OwnerSetting] | None]:
        found: dict[SettingKey, Versioned[OwnerSetting] | None] = {}
        for chunk in chunks(sorted(keys, key=setting_order)):
            found.update(dict.fromkeys(chunk))
            table, params = self._backend.table(
                ("text", "text"), [(key.partner_id, key.client_id or PARTNER_WIDE) for key in chunk]
            )
            rows = self._execute(
                "SELECT s.partner_id, s.client_id, s.owner, s.contact, s.changed_at_us, s.event_id"
                f" FROM {table} JOIN owner_settings AS s"
                " ON s.partner_id = k.column1 AND s.client_id = k.column2",
                params,
            ).fetchall()
            for partner_id, client_id, owner, contact, at_us, event_id in rows:
                value = None if owner is None else OwnerSetting(owner, _contact(contact))
                found[SettingKey(partner_id, client_id or None)] = Versioned(value, Stamp(at_us, event_id))
        return found

    def decision_makers(self, client_ids: Iterable[str]) -> dict[str, Versioned[Contact] | None]:
        found: dict[str, Versioned[Contact] | None] = {}
        for chunk in chunks(sorted(client_ids)):
            found.update(dict.fromkeys(chunk))
            one_of, params = self._backend.any_of("text", chunk)
            rows = self._execute(
                "SELECT client_id, contact, seen_at_us, event_id FROM decision_makers"
                f" WHERE client_id {one_of}",
                params,
            ).fetchall()
            for client_id, contact, at_us, event_id in rows:
                found[client_id] = Versioned(_contact(contact), Stamp(at_us, event_id))
        return found

    def reminders(self, keys: Iterable[ReminderKey]) -> dict[ReminderKey, str | None]:
        found: dict[ReminderKey, str | None] = {}
        for chunk in chunks(sorted(keys)):
            found.update(dict.fromkeys(chunk))
            table, params = self._backend.table(
                ("text", "text", "integer"), [reminder_values(key) for key in chunk]
            )
            rows = self._execute(
                "SELECT r.client_id, r.renewal_date, r.days_until_renewal, r.notification_id"
                f" FROM {table} JOIN reminders AS r ON r.client_id = k.column1 AND r.renewal_date = k.column2"
                " AND r.days_until_renewal = k.column3",
                params,
            ).fetchall()
            for client_id, renewal_date, days, notification_id in rows:
                found[ReminderKey(client_id, date.fromisoformat(renewal_date), days)] = notification_id
        return found

    # --- writes ----------------------------------------------------------------------------

    def write(self, changes: Changes, *, raced: bool = False) -> Written:
        """Write back what a working set changed; which settings and reminder claims stood
        (another worker may have written a newer setting or claimed a reminder meanwhile).
        `raced`: the working set was read in an earlier transaction and others have written
        since, so the writes must report what stood, whatever the backend's strategy."""
        writes: ProjectionWrites | ReportedWrites = self._reported if raced else self._writes
        db = self._db
        written = writes.settings(db, changes.settings) if changes.settings else set()
        if changes.decision_makers:
            writes.decision_makers(db, changes.decision_makers)
        claimed = writes.reminders(db, changes.reminders) if changes.reminders else set()
        return Written(written, claimed)

    def write_settings(self, settings: Mapping[SettingKey, Versioned[OwnerSetting]]) -> set[SettingKey]:
        """Write each setting unless the stored one is as new or newer; the keys written."""
        return self._reported.settings(self._db, settings)

    def write_decision_makers(self, contacts: Mapping[str, Versioned[Contact]]) -> None:
        """Keep, per client, whichever of the stored and the given decision maker is newer."""
        self._reported.decision_makers(self._db, contacts)

    def claim_reminders(self, claims: Mapping[ReminderKey, str]) -> set[ReminderKey]:
        """Record the reminders as sent; the keys that were not already recorded."""
        return self._reported.reminders(self._db, claims)

    # --- the outbox ------------------------------------------------------------------------

    def enqueue(
        self, rows: Sequence[OutboxRow], at_us: int, ledger: Mapping[str, int] | None = None
    ) -> list[OutboxRow]:
        """Add notifications to the outbox; the same rows, each with its `seq`. `ledger` numbers
        the reminder ledger's row of each notification, which its confirm stamps."""
        ledger = ledger or {}
        rows = list(rows)
        values = [
            (
                row.notification_id,
                row.correlation_id,
                row.routing_key,
                row.body,
                at_us,
                ledger.get(row.notification_id),
            )
            for row in rows
        ]
        seqs = self._writes.enqueue(self._db, values)
        return [
            OutboxRow(row.notification_id, row.correlation_id, row.routing_key, row.body, seq)
            for row, seq in zip(rows, seqs, strict=True)
        ]

    def delete_confirmed(self, seqs: Iterable[int | Confirmed]) -> None:
        outbox.delete(self._db, self._backend, seqs, self._writes.ledger)

    # --- the reminder ledger and the owner history -----------------------------------------

    def record_ledger(
        self, reminders: Sequence[LedgerRow], owner_changes: Sequence[HistoryRow]
    ) -> dict[str, int]:
        """Insert the batch's ledger and owner-history rows, a multi-row statement each; the
        ledger numbers of the reminders that notified, by notification id (for `enqueue`)."""
        numbered = self._writes.ledger.reminders(self._db, reminders) if reminders else {}
        if owner_changes:
            self._writes.ledger.owner_changes(self._db, owner_changes)
        return numbered

    # --- crash counts ----------------------------------------------------------------------

    def note_attempt(self, message_key: str, at_us: int) -> int:
        """Count one more start at handling a redelivered message; the count so far."""
        row = self._execute(
            "INSERT INTO handling_attempts (message_key, attempts, last_at_us) VALUES (?, 1, ?)"
            " ON CONFLICT (message_key) DO UPDATE SET attempts = handling_attempts.attempts + 1,"
            " last_at_us = excluded.last_at_us RETURNING attempts",
            (message_key, at_us),
        ).fetchone()
        return int(row[0])

    def forget_attempts(self, message_key: str) -> None:
        retention.forget_attempts(self._db, message_key)


def _contact(stored: str | None) -> Contact | None:
    """A contact the worker itself stored. One written under older, looser rules that today's
    model refuses is still read as it was stored."""
    if stored is None:
        return None
    try:
        return Contact.model_validate_json(stored)
    except ValidationError:
        return Contact.model_construct(**json.loads(stored))
