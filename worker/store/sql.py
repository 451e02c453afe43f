"""The store over any DB-API connection; backends differ only in DDL and placeholder style."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from events import Contact
from handlers import OwnerSetting, ReminderKey, SettingKey, Stamp, Versioned

# Partner-wide defaults are stored under this client id; real client ids are never empty.
_PARTNER_WIDE = ""


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A notification committed but maybe not yet confirmed by the broker."""

    notification_id: str
    correlation_id: str
    routing_key: str
    body: bytes


class SqlStore:
    """One connection, used by one thread. `batch()` is the unit of work."""

    def __init__(
        self,
        connection: Connection,
        *,
        placeholder: str,
        transient_errors: tuple[type[Exception], ...],
        description: str,
        begin: str = "BEGIN",
        binary_collation: str = "BINARY",
    ) -> None:
        self.binary_collation = binary_collation
        self._connection = connection
        self._begin = begin
        self._placeholder = placeholder
        self.transient_errors = transient_errors
        self.description = description

    def sql(self, statement: str) -> str:
        return statement if self._placeholder == "?" else statement.replace("?", self._placeholder)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        return self._connection.execute(self.sql(statement), params)

    @contextmanager
    def batch(self) -> Iterator["Batch"]:
        """One transaction: committed when the block ends cleanly, rolled back otherwise."""
        self._connection.execute(self._begin)
        try:
            yield Batch(self)
        except BaseException:
            self._connection.execute("ROLLBACK")
            raise
        self._connection.execute("COMMIT")

    def pending(self, limit: int = 1000) -> list[OutboxRow]:
        """Outbox rows not yet confirmed, oldest first (what a crash left unsent)."""
        rows = self.execute(
            "SELECT notification_id, correlation_id, routing_key, body FROM outbox ORDER BY seq LIMIT ?",
            (limit,),
        ).fetchall()
        return [OutboxRow(row[0], row[1], row[2], bytes(row[3])) for row in rows]

    def forget_sent(self, notification_ids: Sequence[str]) -> None:
        """Drop confirmed rows, in a transaction of their own."""
        if notification_ids:
            with self.batch() as batch:
                batch.forget_sent(notification_ids)

    def forget_attempts(self, message_key: str) -> None:
        with self.batch() as batch:
            batch.forget_attempts(message_key)

    def close(self) -> None:
        self._connection.close()


class Batch:
    """The projection port for handlers, plus the inbox and outbox for the worker."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._execute = store.execute

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Undo one message's writes if handling it fails, keeping the rest of the batch."""
        self._execute("SAVEPOINT message")
        try:
            yield
        except BaseException:
            self._execute("ROLLBACK TO SAVEPOINT message")
            self._execute("RELEASE SAVEPOINT message")
            raise
        self._execute("RELEASE SAVEPOINT message")

    def record_event(self, event_id: str, at_us: int) -> bool:
        """Add the event to the inbox; False if it was already processed."""
        cursor = self._execute(
            "INSERT INTO inbox (event_id, processed_at_us) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (event_id, at_us),
        )
        return bool(cursor.rowcount == 1)

    def enqueue(self, row: OutboxRow, at_us: int) -> None:
        self._execute(
            "INSERT INTO outbox (notification_id, correlation_id, routing_key, body, created_at_us)"
            " VALUES (?, ?, ?, ?, ?)",
            (row.notification_id, row.correlation_id, row.routing_key, row.body, at_us),
        )

    def forget_sent(self, notification_ids: Sequence[str]) -> None:
        for start in range(0, len(notification_ids), 500):
            chunk = notification_ids[start : start + 500]
            marks = ", ".join("?" * len(chunk))
            self._execute(f"DELETE FROM outbox WHERE notification_id IN ({marks})", tuple(chunk))

    def note_attempt(self, message_key: str) -> int:
        """Count one more start at handling a redelivered message; return the count so far."""
        row = self._execute(
            "INSERT INTO handling_attempts (message_key, attempts) VALUES (?, 1)"
            " ON CONFLICT (message_key) DO UPDATE SET attempts = handling_attempts.attempts + 1"
            " RETURNING attempts",
            (message_key,),
        ).fetchone()
        return int(row[0])

    def forget_attempts(self, message_key: str) -> None:
        self._execute("DELETE FROM handling_attempts WHERE message_key = ?", (message_key,))

    def setting(self, key: SettingKey) -> Versioned[OwnerSetting] | None:
        row = self._execute(
            "SELECT owner, contact, changed_at_us, event_id FROM owner_settings"
            " WHERE partner_id = ? AND client_id = ?",
            (key.partner_id, key.client_id or _PARTNER_WIDE),
        ).fetchone()
        return None if row is None else _versioned_setting(row)

    def settings_for(
        self, partner_id: str, client_id: str
    ) -> tuple[Versioned[OwnerSetting] | None, Versioned[OwnerSetting] | None]:
        rows = self._execute(
            "SELECT client_id, owner, contact, changed_at_us, event_id FROM owner_settings"
            " WHERE partner_id = ? AND client_id IN (?, ?)",
            (partner_id, client_id, _PARTNER_WIDE),
        ).fetchall()
        found = {row[0]: _versioned_setting(row[1:]) for row in rows}
        return found.get(client_id), found.get(_PARTNER_WIDE)

    def put_setting(self, key: SettingKey, setting: Versioned[OwnerSetting]) -> None:
        value = setting.value
        self._execute(
            "INSERT INTO owner_settings (partner_id, client_id, owner, contact, changed_at_us, event_id)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (partner_id, client_id) DO UPDATE SET"
            " owner = excluded.owner, contact = excluded.contact,"
            " changed_at_us = excluded.changed_at_us, event_id = excluded.event_id",
            (
                key.partner_id,
                key.client_id or _PARTNER_WIDE,
                None if value is None else value.owner,
                None if value is None or value.contact is None else value.contact.model_dump_json(),
                setting.stamp.at_us,
                setting.stamp.event_id,
            ),
        )

    def decision_maker(self, client_id: str) -> Versioned[Contact] | None:
        row = self._execute(
            "SELECT contact, seen_at_us, event_id FROM decision_makers WHERE client_id = ?",
            (client_id,),
        ).fetchone()
        return None if row is None else Versioned(_contact(row[0]), Stamp(row[1], row[2]))

    def remember_decision_maker(self, client_id: str, contact: Versioned[Contact]) -> None:
        assert contact.value is not None, "a decision maker is never cleared"
        self._execute(
            "INSERT INTO decision_makers (client_id, contact, seen_at_us, event_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (client_id) DO UPDATE SET contact = excluded.contact,"
            " seen_at_us = excluded.seen_at_us, event_id = excluded.event_id"
            " WHERE excluded.seen_at_us > decision_makers.seen_at_us"
            " OR (excluded.seen_at_us = decision_makers.seen_at_us"
            f" AND excluded.event_id > decision_makers.event_id COLLATE {self._store.binary_collation})",
            (client_id, contact.value.model_dump_json(), contact.stamp.at_us, contact.stamp.event_id),
        )

    def claim_reminder(self, key: ReminderKey, notification_id: str) -> bool:
        cursor = self._execute(
            "INSERT INTO reminders (client_id, renewal_date, days_until_renewal, notification_id)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (key.client_id, key.renewal_date.isoformat(), key.days_until_renewal, notification_id),
        )
        return bool(cursor.rowcount == 1)


def _versioned_setting(row: Sequence[Any]) -> Versioned[OwnerSetting]:
    owner, contact, at_us, event_id = row
    value = None if owner is None else OwnerSetting(owner, _contact(contact))
    return Versioned(value, Stamp(at_us, event_id))


def _contact(stored: str | None) -> Contact | None:
    return None if stored is None else Contact.model_validate_json(stored)
