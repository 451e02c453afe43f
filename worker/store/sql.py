"""The store over a DB-API connection. SQLite and PostgreSQL share every statement; a `Backend`
says how to connect, which placeholder and collation to use, and what its errors mean.

A batch is one transaction (`transaction()`) of a few set-based statements: the inbox insert,
one read per kind of state, one conditional multi-row write per kind, the outbox insert. Rows
are always written in key order, so concurrent batches lock in the same order and cannot
deadlock each other. Last-writer-wins writes are single conditional statements: the database,
not the worker, decides whether a stamp is newer.
"""

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import date
from typing import Any, Protocol

from pydantic import ValidationError

from events import Contact
from handlers import OwnerSetting, ReminderKey, SettingKey, Stamp, Versioned
from worker.store.model import OutboxRow, StoreUnavailable, Written
from worker.store.schema import LATEST, MIGRATIONS, VERSION_TABLE, Migration, SchemaTooNew, SchemaTooOld
from worker.store.working_set import Changes

# Partner-wide defaults are stored under this client id; real client ids are never empty.
_PARTNER_WIDE = ""
# Rows per multi-row statement (SQLite allows 32766 parameters; PostgreSQL 65535).
_CHUNK = 500


class Connection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def cursor(self) -> Any: ...
    def close(self) -> None: ...


class Backend(Protocol):
    """What differs between SQLite and PostgreSQL."""

    kind: str
    placeholder: str
    begin: str  # starts a batch's transaction
    binary_collation: str  # compares event ids by code point
    skip_locked: str  # appended to a SELECT that claims rows other workers may be claiming
    # True when a transaction keeps every other writer out from its start (SQLite's BEGIN
    # IMMEDIATE): what the batch read is then what it writes over, so conditional writes need
    # not report back which rows they changed.
    serialized_writes: bool

    @property
    def description(self) -> str:
        """The URL, password masked."""
        ...

    def connect(self) -> Connection: ...

    def rows(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        """A row source for `INSERT INTO t (columns) <source>`, and its parameters."""
        ...

    def table(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        """The rows as a table `k` with columns `column1`, `column2`... for a FROM clause."""
        ...

    def any_of(self, type_: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`<column> <this>`: the column is one of the values."""
        ...

    def lock_schema(self, connection: Connection) -> None:
        """Start a transaction that holds the migration lock until it ends."""
        ...

    def statements(self, migration: Migration) -> tuple[str, ...]: ...

    def classify(self, error: Exception, connection: Connection | None) -> type[Exception] | None:
        """StoreUnavailable, StoreConflict, or None for any other error."""
        ...


class SqlStore:
    """One connection, used by one thread; reopened by `reconnect()` after an outage."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self.kind = backend.kind
        self.description = backend.description
        self._connection: Connection | None = None
        self._connection = self._connect()

    # --- the connection --------------------------------------------------------------------

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        if self._connection is None:
            raise StoreUnavailable("not connected")
        if self._backend.placeholder != "?":
            statement = statement.replace("?", self._backend.placeholder)
        try:
            return self._connection.execute(statement, params)
        except Exception as exc:
            raise self._translated(exc) from exc

    def execute_many(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        if self._connection is None:
            raise StoreUnavailable("not connected")
        if self._backend.placeholder != "?":
            statement = statement.replace("?", self._backend.placeholder)
        try:
            self._connection.cursor().executemany(statement, rows)
        except Exception as exc:
            raise self._translated(exc) from exc

    def reconnect(self) -> None:
        """Drop the connection and open a new one (StoreUnavailable if that fails too)."""
        self._close_quietly()
        self._connection = self._connect()

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers now."""
        self.execute("SELECT 1").fetchall()

    def close(self) -> None:
        self._close_quietly()

    @contextmanager
    def transaction(self) -> Iterator["SqlTransaction"]:
        """Committed when the block ends cleanly, rolled back otherwise."""
        self.execute(self._backend.begin)
        try:
            yield SqlTransaction(self)
        except BaseException:
            self._rollback()
            raise
        self.execute("COMMIT")

    # --- the schema ------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The version the store is at (0: empty, or made before versions were recorded)."""
        try:
            with self.transaction():
                row = self.execute("SELECT max(version) FROM schema_version").fetchone()
        except StoreUnavailable:
            raise
        except Exception:  # no version table yet
            return 0
        return int(row[0] or 0)

    def migrate(self) -> tuple[int, int]:
        """Apply the missing migrations under the schema lock; (version before, version after).
        Any number of workers may do this at once: one migrates, the others wait and find
        nothing left to do."""
        assert self._connection is not None
        try:
            self._backend.lock_schema(self._connection)
        except Exception as exc:
            raise self._translated(exc) from exc
        try:
            self.execute(VERSION_TABLE)
            found = int(self.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0)
            if found > LATEST:
                raise SchemaTooNew(found)
            for migration in MIGRATIONS[found:]:
                for statement in self._backend.statements(migration):
                    self.execute(statement)
                self.execute(
                    "INSERT INTO schema_version (version, description, applied_at_us) VALUES (?, ?, ?)",
                    (migration.version, migration.description, _now_us()),
                )
        except BaseException:
            self._rollback()
            raise
        self.execute("COMMIT")
        return found, max(found, LATEST)

    def check_schema(self) -> None:
        """SchemaTooNew or SchemaTooOld unless the store is at this code's version."""
        found = self.schema_version()
        if found > LATEST:
            raise SchemaTooNew(found)
        if found < LATEST:
            raise SchemaTooOld(found)

    # --- outbox and housekeeping, each in a short transaction of its own --------------------

    def unsent(self, seqs: Sequence[int]) -> list[OutboxRow]:
        """These outbox rows, if still there, oldest first."""
        rows: list[OutboxRow] = []
        for chunk in _chunks(sorted(seqs)):
            one_of, params = self._backend.any_of("bigint", chunk)
            rows += _outbox_rows(
                self.execute(
                    f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE seq {one_of} AND set_aside IS NULL"
                    " ORDER BY seq",
                    params,
                ).fetchall()
            )
        return rows

    def claim_orphans(self, *, now_us: int, grace_us: int, limit: int) -> list[OutboxRow]:
        """Outbox rows older than the grace period that nobody has claimed within it: left by
        a worker that died before its broker confirmed them. Claimed for one grace period, so
        no other worker publishes them meanwhile; rows other workers are claiming right now
        are skipped, not waited for."""
        with self.transaction():
            claimed = self.execute(
                "UPDATE outbox SET claimed_until_us = ? WHERE seq IN ("
                " SELECT seq FROM outbox WHERE created_at_us <= ? AND COALESCE(claimed_until_us, 0) <= ?"
                " AND set_aside IS NULL"
                f" ORDER BY seq LIMIT ?{self._backend.skip_locked}) RETURNING {_OUTBOX_COLUMNS}",
                (now_us + grace_us, now_us - grace_us, now_us, limit),
            ).fetchall()
        return sorted(_outbox_rows(claimed), key=lambda row: row.seq or 0)

    def outbox_stats(self) -> tuple[int, int | None]:
        """Rows in the outbox to publish, and when the oldest was written (µs since the epoch;
        None: empty). Rows set aside are not counted."""
        count, oldest = self.execute(
            "SELECT count(*), min(created_at_us) FROM outbox WHERE set_aside IS NULL"
        ).fetchone()
        return int(count), None if oldest is None else int(oldest)

    def set_aside(self, seq: int, reason: str) -> None:
        """Keep an outbox row that can never be published, with the reason, and never publish
        it again (nor count it as pending): it stays for an operator to read."""
        with self.transaction():
            self.execute("UPDATE outbox SET set_aside = ? WHERE seq = ?", (reason[:1000], seq))

    def set_aside_rows(self) -> list[tuple[OutboxRow, str]]:
        """The rows set aside, oldest first, each with its reason."""
        rows = self.execute(
            f"SELECT {_OUTBOX_COLUMNS}, set_aside FROM outbox WHERE set_aside IS NOT NULL ORDER BY seq"
        ).fetchall()
        return [(row, str(found[-1])) for row, found in zip(_outbox_rows(rows), rows, strict=True)]

    def delete_confirmed(self, seqs: Sequence[int]) -> None:
        """Drop confirmed rows, in a transaction of their own."""
        if seqs:
            with self.transaction() as transaction:
                transaction.delete_confirmed(seqs)

    def forget_attempts(self, message_key: str) -> None:
        with self.transaction() as transaction:
            transaction.forget_attempts(message_key)

    def prune(self, *, processed_before_us: int, renewals_before: date, limit: int) -> int:
        """Delete at most `limit` expired rows of each kind, each kind in its own short
        transaction; how many went. Inbox entries and crash counts older than the window,
        reminder keys of renewals before the given date."""
        deleted = 0
        for statement, bound in (
            (
                "DELETE FROM inbox WHERE event_id IN"
                " (SELECT event_id FROM inbox WHERE processed_at_us < ? LIMIT ?)",
                processed_before_us,
            ),
            (
                "DELETE FROM reminders WHERE (client_id, renewal_date, days_until_renewal) IN"
                " (SELECT client_id, renewal_date, days_until_renewal FROM reminders"
                " WHERE renewal_date < ? LIMIT ?)",
                renewals_before.isoformat(),
            ),
            (
                "DELETE FROM handling_attempts WHERE message_key IN"
                " (SELECT message_key FROM handling_attempts WHERE last_at_us < ? LIMIT ?)",
                processed_before_us,
            ),
        ):
            with self.transaction():
                deleted += max(self.execute(statement, (bound, limit)).rowcount, 0)
        return deleted

    def _connect(self) -> Connection:
        try:
            return self._backend.connect()
        except Exception as exc:
            raise self._translated(exc) from exc

    def _translated(self, error: Exception) -> Exception:
        kind = self._backend.classify(error, self._connection)
        return error if kind is None else kind(f"{type(error).__name__}: {error}".strip())

    def _rollback(self) -> None:
        with suppress(StoreUnavailable):  # the connection is gone, and the transaction with it
            self.execute("ROLLBACK")

    def _close_quietly(self) -> None:
        if self._connection is not None:
            with suppress(Exception):  # closing a broken connection may fail; it is gone either way
                self._connection.close()
            self._connection = None


class SqlTransaction:
    """One batch's reads and writes. Reads implement `working_set.StoredState`."""

    def __init__(self, store: SqlStore) -> None:
        self._backend = store._backend
        self._execute = store.execute
        self._execute_many = store.execute_many
        self._collation = store._backend.binary_collation
        self._serialized = store._backend.serialized_writes

    # --- the inbox -------------------------------------------------------------------------

    def record_events(self, event_ids: Iterable[str], at_us: int) -> set[str]:
        """Add the events to the inbox; the ids that were not there yet."""
        fresh: set[str] = set()
        for chunk in _chunks(sorted(set(event_ids))):
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
        for chunk in _chunks(sorted(set(event_ids))):
            one_of, params = self._backend.any_of("text", chunk)
            self._execute(f"DELETE FROM inbox WHERE event_id {one_of}", params)

    # --- reads -----------------------------------------------------------------------------

    def settings(self, keys: Iterable[SettingKey]) -> dict[SettingKey, Versioned[OwnerSetting] | None]:
        found: dict[SettingKey, Versioned[OwnerSetting] | None] = {}
        for chunk in _chunks(sorted(keys, key=_setting_order)):
            found.update(dict.fromkeys(chunk))
            table, params = self._backend.table(
                ("text", "text"), [(key.partner_id, key.client_id or _PARTNER_WIDE) for key in chunk]
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
        for chunk in _chunks(sorted(client_ids)):
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
        for chunk in _chunks(sorted(keys)):
            found.update(dict.fromkeys(chunk))
            table, params = self._backend.table(
                ("text", "text", "integer"), [_reminder_values(key) for key in chunk]
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

    def write(self, changes: Changes) -> Written:
        """Write back what a working set, read in this same transaction, changed; which settings
        and reminder claims stood (another worker may have written a newer setting or claimed a
        reminder meanwhile). Where the backend keeps every other writer out of the transaction,
        what was read is what is written over, so all of them stand and no row is reported back."""
        serialized = self._serialized
        written = self.write_settings(changes.settings, serialized) if changes.settings else set()
        if changes.decision_makers:
            self.write_decision_makers(changes.decision_makers, serialized)
        claimed = self.claim_reminders(changes.reminders, serialized) if changes.reminders else set()
        return Written(written, claimed)

    def write_settings(
        self, settings: Mapping[SettingKey, Versioned[OwnerSetting]], unreported: bool = False
    ) -> set[SettingKey]:
        """Write each setting unless the stored one is as new or newer; the keys written (with
        `unreported`, the keys given: see `write`)."""
        upsert = (
            "INSERT INTO owner_settings (partner_id, client_id, owner, contact, changed_at_us, event_id)"
            " {values} ON CONFLICT (partner_id, client_id) DO UPDATE SET"
            " owner = excluded.owner, contact = excluded.contact,"
            " changed_at_us = excluded.changed_at_us, event_id = excluded.event_id"
            f" WHERE {self._newer('owner_settings', 'changed_at_us')}"
        )
        if unreported:
            keys = sorted(settings, key=_setting_order)
            self._execute_many(
                upsert.format(values="VALUES " + _rows(1, 6)), [_setting_values(k, settings[k]) for k in keys]
            )
            return set(keys)
        written: set[SettingKey] = set()
        for chunk in _chunks(sorted(settings, key=_setting_order)):
            source, params = self._backend.rows(
                _SETTING_TYPES, [_setting_values(key, settings[key]) for key in chunk]
            )
            rows = self._execute(
                upsert.format(values=source) + " RETURNING partner_id, client_id", params
            ).fetchall()
            written.update(SettingKey(partner_id, client_id or None) for partner_id, client_id in rows)
        return written

    def write_decision_makers(
        self, contacts: Mapping[str, Versioned[Contact]], unreported: bool = False
    ) -> None:
        """Keep, per client, whichever of the stored and the given decision maker is newer."""
        upsert = (
            "INSERT INTO decision_makers (client_id, contact, seen_at_us, event_id)"
            " {values} ON CONFLICT (client_id) DO UPDATE SET"
            " contact = excluded.contact, seen_at_us = excluded.seen_at_us, event_id = excluded.event_id"
            f" WHERE {self._newer('decision_makers', 'seen_at_us')}"
        )
        if unreported:
            rows = [_contact_values(client_id, contacts[client_id]) for client_id in sorted(contacts)]
            self._execute_many(upsert.format(values="VALUES " + _rows(1, 4)), rows)
            return
        for chunk in _chunks(sorted(contacts)):
            source, params = self._backend.rows(
                ("text", "text", "bigint", "text"), [_contact_values(c, contacts[c]) for c in chunk]
            )
            self._execute(upsert.format(values=source), params)

    def claim_reminders(
        self, claims: Mapping[ReminderKey, str], unreported: bool = False
    ) -> set[ReminderKey]:
        """Record the reminders as sent; the keys that were not already recorded (with
        `unreported`, the keys given: see `write`)."""
        insert = (
            "INSERT INTO reminders (client_id, renewal_date, days_until_renewal, notification_id)"
            " {values} ON CONFLICT DO NOTHING"
        )
        if unreported:
            keys = sorted(claims)
            self._execute_many(
                insert.format(values="VALUES " + _rows(1, 4)),
                [(*_reminder_values(k), claims[k]) for k in keys],
            )
            return set(keys)
        claimed: set[ReminderKey] = set()
        for chunk in _chunks(sorted(claims)):
            source, params = self._backend.rows(
                ("text", "text", "integer", "text"), [(*_reminder_values(key), claims[key]) for key in chunk]
            )
            rows = self._execute(
                insert.format(values=source) + " RETURNING client_id, renewal_date, days_until_renewal",
                params,
            ).fetchall()
            claimed.update(ReminderKey(c, date.fromisoformat(d), n) for c, d, n in rows)
        return claimed

    def enqueue(self, rows: Sequence[OutboxRow], at_us: int) -> list[OutboxRow]:
        """Add notifications to the outbox; the same rows, each with its `seq`."""
        queued: list[OutboxRow] = []
        for chunk in _chunks(list(rows)):
            source, params = self._backend.rows(
                ("text", "text", "text", "bytea", "bigint"),
                [
                    (row.notification_id, row.correlation_id, row.routing_key, row.body, at_us)
                    for row in chunk
                ],
            )
            returned = self._execute(
                "INSERT INTO outbox (notification_id, correlation_id, routing_key, body, created_at_us)"
                f" {source} RETURNING seq, notification_id",
                params,
            ).fetchall()
            seqs = {notification_id: seq for seq, notification_id in returned}
            queued += [
                OutboxRow(
                    row.notification_id,
                    row.correlation_id,
                    row.routing_key,
                    row.body,
                    seqs[row.notification_id],
                )
                for row in chunk
            ]
        return queued

    def delete_confirmed(self, seqs: Iterable[int]) -> None:
        for chunk in _chunks(sorted(seqs)):
            one_of, params = self._backend.any_of("bigint", chunk)
            self._execute(f"DELETE FROM outbox WHERE seq {one_of}", params)

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
        self._execute("DELETE FROM handling_attempts WHERE message_key = ?", (message_key,))

    def _newer(self, table: str, at_column: str) -> str:
        """SQL: the row being written carries a larger (time, event id) stamp than the stored one."""
        return (
            f"(excluded.{at_column} > {table}.{at_column} OR (excluded.{at_column} = {table}.{at_column}"
            f" AND excluded.event_id > {table}.event_id COLLATE {self._collation}))"
        )


_OUTBOX_COLUMNS = "seq, notification_id, correlation_id, routing_key, body"


def _outbox_rows(rows: Iterable[Sequence[Any]]) -> list[OutboxRow]:
    return [OutboxRow(row[1], row[2], row[3], bytes(row[4]), row[0]) for row in rows]


_SETTING_TYPES = ("text", "text", "text", "text", "bigint", "text")


def _setting_order(key: SettingKey) -> tuple[str, str]:
    return key.partner_id, key.client_id or _PARTNER_WIDE


def _setting_values(key: SettingKey, setting: Versioned[OwnerSetting]) -> tuple[Any, ...]:
    value = setting.value
    return (
        key.partner_id,
        key.client_id or _PARTNER_WIDE,
        None if value is None else value.owner,
        None if value is None or value.contact is None else value.contact.model_dump_json(),
        setting.stamp.at_us,
        setting.stamp.event_id,
    )


def _contact_values(client_id: str, contact: Versioned[Contact]) -> tuple[Any, ...]:
    assert contact.value is not None, "a decision maker is never cleared"
    return client_id, contact.value.model_dump_json(), contact.stamp.at_us, contact.stamp.event_id


def _reminder_values(key: ReminderKey) -> tuple[Any, ...]:
    return key.client_id, key.renewal_date.isoformat(), key.days_until_renewal


def _contact(stored: str | None) -> Contact | None:
    """A contact the worker itself stored. One written under older, looser rules that today's
    model refuses is still read as it was stored."""
    if stored is None:
        return None
    try:
        return Contact.model_validate_json(stored)
    except ValidationError:
        return Contact.model_construct(**json.loads(stored))


def _rows(count: int, width: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * count)


def _chunks(items: Sequence[Any]) -> Iterator[list[Any]]:
    items = list(items)
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


def _now_us() -> int:
    return time.time_ns() // 1000
