"""How a batch writes its projection back: two strategies, and the backend picks one when the
store is built (`Backend.writes`; the interface, `ProjectionWrites`, is in `backend`).

Every write is conditional and decided by the database: a setting or a decision maker replaces
the stored one only when its (time, event id) stamp is newer; a reminder is claimed only when
nobody has claimed it. `ReportedWrites` has each multi-row statement return the rows that
stood, since another worker may have written in between. `SerializedWrites` serves a backend
whose batch keeps every other writer out from its start (SQLite's BEGIN IMMEDIATE): what the
batch read is what it writes over, so everything it writes stands and nothing is reported back.
"""

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from events import Contact
from handlers import OwnerSetting, ReminderKey, SettingKey, Versioned, iso_date
from worker.store.backend import Backend, Statements, chunks
from worker.store.ledger_writes import EachLedgerWrites, LedgerWrites, insert_numbered

# Partner-wide defaults are stored under this client id; real client ids are never empty.
PARTNER_WIDE = ""

_OUTBOX_INSERT = (
    "INSERT INTO outbox (notification_id, correlation_id, routing_key, body, created_at_us, ledger_seq) "
)
_OUTBOX_TYPES = ("text", "text", "text", "bytea", "bigint", "bigint")
OutboxValues = tuple[str, str, str, bytes, int, int | None]
"""One outbox row to insert: the notification id, correlation id, routing key, body, when it was
written (µs) and the number of its ledger row."""


class ReportedWrites:
    """Multi-row statements, a chunk at a time, each returning the rows that stood."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.ledger: LedgerWrites | EachLedgerWrites = LedgerWrites(backend)
        self._settings = (
            f"INSERT INTO owner_settings ({_SETTING_COLUMNS}) ",
            f" {_SETTING_UPDATE} WHERE {_newer('owner_settings', 'changed_at_us', backend)}"
            " RETURNING partner_id, client_id",
        )
        self._decision_makers = (
            f"INSERT INTO decision_makers ({_CONTACT_COLUMNS}) ",
            f" {_CONTACT_UPDATE} WHERE {_newer('decision_makers', 'seen_at_us', backend)}",
        )
        self._reminders = (
            f"INSERT INTO reminders ({_REMINDER_COLUMNS}) ",
            " ON CONFLICT DO NOTHING RETURNING client_id, renewal_date, days_until_renewal",
        )

    def settings(
        self, db: Statements, settings: Mapping[SettingKey, Versioned[OwnerSetting]]
    ) -> set[SettingKey]:
        head, tail = self._settings
        written: set[SettingKey] = set()
        for chunk in chunks(sorted(settings, key=setting_order)):
            source, params = self._backend.rows(
                _SETTING_TYPES, [setting_values(key, settings[key]) for key in chunk]
            )
            rows = db.execute(head + source + tail, params).fetchall()
            written.update(SettingKey(partner_id, client_id or None) for partner_id, client_id in rows)
        return written

    def decision_makers(self, db: Statements, contacts: Mapping[str, Versioned[Contact]]) -> None:
        head, tail = self._decision_makers
        for chunk in chunks(sorted(contacts)):
            source, params = self._backend.rows(
                _CONTACT_TYPES, [contact_values(client_id, contacts[client_id]) for client_id in chunk]
            )
            db.execute(head + source + tail, params)

    def reminders(self, db: Statements, claims: Mapping[ReminderKey, str]) -> set[ReminderKey]:
        head, tail = self._reminders
        claimed: set[ReminderKey] = set()
        for chunk in chunks(sorted(claims)):
            source, params = self._backend.rows(
                _REMINDER_TYPES, [(*reminder_values(key), claims[key]) for key in chunk]
            )
            rows = db.execute(head + source + tail, params).fetchall()
            claimed.update(ReminderKey(c, date.fromisoformat(d), n) for c, d, n in rows)
        return claimed

    def enqueue(self, db: Statements, rows: Sequence[OutboxValues]) -> list[int]:
        """Insert the outbox rows; their numbers (`seq`), in order."""
        seqs: list[int] = []
        for chunk in chunks(rows):
            source, params = self._backend.rows(_OUTBOX_TYPES, chunk)
            returned = dict(db.execute(_OUTBOX_INSERT + source + " RETURNING notification_id, seq", params))
            seqs += [returned[row[0]] for row in chunk]
        return seqs


class SerializedWrites:
    """One statement per kind, run over all its rows with `executemany`; every key given stands."""

    def __init__(self, backend: Backend) -> None:
        self.ledger: LedgerWrites | EachLedgerWrites = EachLedgerWrites()
        self._settings = (
            f"INSERT INTO owner_settings ({_SETTING_COLUMNS}) VALUES {_marks(6)} {_SETTING_UPDATE}"
            f" WHERE {_newer('owner_settings', 'changed_at_us', backend)}"
        )
        self._decision_makers = (
            f"INSERT INTO decision_makers ({_CONTACT_COLUMNS}) VALUES {_marks(4)} {_CONTACT_UPDATE}"
            f" WHERE {_newer('decision_makers', 'seen_at_us', backend)}"
        )
        self._reminders = (
            f"INSERT INTO reminders ({_REMINDER_COLUMNS}) VALUES {_marks(4)} ON CONFLICT DO NOTHING"
        )
        self._outbox = _OUTBOX_INSERT + f"VALUES {_marks(len(_OUTBOX_TYPES))}"

    def settings(
        self, db: Statements, settings: Mapping[SettingKey, Versioned[OwnerSetting]]
    ) -> set[SettingKey]:
        keys = sorted(settings, key=setting_order)
        db.execute_many(self._settings, [setting_values(key, settings[key]) for key in keys])
        return set(keys)

    def decision_makers(self, db: Statements, contacts: Mapping[str, Versioned[Contact]]) -> None:
        rows = [contact_values(client_id, contacts[client_id]) for client_id in sorted(contacts)]
        db.execute_many(self._decision_makers, rows)

    def reminders(self, db: Statements, claims: Mapping[ReminderKey, str]) -> set[ReminderKey]:
        keys = sorted(claims)
        db.execute_many(self._reminders, [(*reminder_values(key), claims[key]) for key in keys])
        return set(keys)

    def enqueue(self, db: Statements, rows: Sequence[OutboxValues]) -> list[int]:
        """Insert the outbox rows, one prepared statement over all (a multi-row one's text
        changes with the number of rows, and its body parameters cannot be padded as a read's
        can); their numbers, in order."""
        return list(insert_numbered(db, self._outbox, rows, ("outbox", "notification_id", 0))) if rows else []


_SETTING_COLUMNS = "partner_id, client_id, owner, contact, changed_at_us, event_id"
_SETTING_TYPES = ("text", "text", "text", "text", "bigint", "text")
_SETTING_UPDATE = (
    "ON CONFLICT (partner_id, client_id) DO UPDATE SET owner = excluded.owner, contact = excluded.contact,"
    " changed_at_us = excluded.changed_at_us, event_id = excluded.event_id"
)
_CONTACT_COLUMNS = "client_id, contact, seen_at_us, event_id"
_CONTACT_TYPES = ("text", "text", "bigint", "text")
_CONTACT_UPDATE = (
    "ON CONFLICT (client_id) DO UPDATE SET"
    " contact = excluded.contact, seen_at_us = excluded.seen_at_us, event_id = excluded.event_id"
)
_REMINDER_COLUMNS = "client_id, renewal_date, days_until_renewal, notification_id"
_REMINDER_TYPES = ("text", "text", "integer", "text")


def _newer(table: str, at_column: str, backend: Backend) -> str:
    """SQL: the row being written carries a larger (time, event id) stamp than the stored one."""
    return (
        f"(excluded.{at_column} > {table}.{at_column} OR (excluded.{at_column} = {table}.{at_column}"
        f" AND excluded.event_id > {table}.event_id COLLATE {backend.binary_collation}))"
    )


def _marks(width: int) -> str:
    return "(" + ", ".join("?" * width) + ")"


def setting_order(key: SettingKey) -> tuple[str, str]:
    return key.partner_id, key.client_id or PARTNER_WIDE


def setting_values(key: SettingKey, setting: Versioned[OwnerSetting]) -> tuple[Any, ...]:
    value = setting.value
    return (
        key.partner_id,
        key.client_id or PARTNER_WIDE,
        None if value is None else value.owner,
        None if value is None or value.contact is None else value.contact.model_dump_json(),
        setting.stamp.at_us,
        setting.stamp.event_id,
    )


def contact_values(client_id: str, contact: Versioned[Contact]) -> tuple[Any, ...]:
    assert contact.value is not None, "a decision maker is never cleared"
    return client_id, contact.value.model_dump_json(), contact.stamp.at_us, contact.stamp.event_id


def reminder_values(key: ReminderKey) -> tuple[Any, ...]:
    return key.client_id, iso_date(key.renewal_date), key.days_until_renewal
