"""PostgreSQL, for deployments that run several workers: same statements as SQLite, `%s`
placeholders (rewritten once per distinct statement), and a session that gives up on locks
instead of waiting forever."""

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import psycopg
from psycopg import errors

from worker.redaction import masked, redacted
from worker.store.backend import DriverConnection
from worker.store.model import StoreConflict, StoreRefused, StoreUnavailable
from worker.store.projection_writes import ReportedWrites
from worker.store.schema import SchemaMigration

# Any number of workers may migrate at once; this advisory lock lets one of them at a time.
_SCHEMA_LOCK = 0x72656E657761  # "renewa"
# Errors that mean "do it again": another transaction was in the way.
_CONFLICTS = (
    errors.DeadlockDetected,
    errors.SerializationFailure,
    errors.LockNotAvailable,
    errors.QueryCanceled,
)
# Errors that mean "the server is not there for us now", whatever state the connection is in.
_UNAVAILABLE = (
    errors.AdminShutdown,
    errors.CrashShutdown,
    errors.CannotConnectNow,
    errors.TooManyConnections,
    errors.ConnectionException,
    errors.IdleInTransactionSessionTimeout,
)
# What the server says when it refuses a new connection for good (libpq gives no SQLSTATE for a
# failed connection, so its FATAL message is what there is): waiting will not change it.
_REFUSED = (
    "does not exist",  # FATAL:  database "x" / role "x" does not exist
    "password authentication failed",
    "no pg_hba.conf entry",
    "permission denied for database",
)


@dataclass
class PostgresBackend:
    url: str
    lock_timeout: float = 5.0
    statement_timeout: float = 30.0
    idle_in_transaction_timeout: float = 60.0
    connect_timeout: float = 5.0
    kind: str = "postgresql"
    begin: str = "BEGIN"
    begin_read_only: str = "BEGIN READ ONLY"
    # Event ids are compared by code point, as Python does, not by the database's locale.
    binary_collation: str = '"C"'
    skip_locked: str = " FOR UPDATE SKIP LOCKED"
    others_commits: str | None = None  # many writers: a batch decides and writes in one transaction

    @property
    def description(self) -> str:
        return masked(self.url)

    @property
    def placeholders(self) -> Callable[[str], str]:
        return pyformat

    def writes(self) -> ReportedWrites:
        """Other workers write between a batch's reads and its writes: each write says which
        rows stood."""
        return ReportedWrites(self)

    def connect(self) -> DriverConnection:
        try:
            connection = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(1, int(self.connect_timeout))
            )
        except psycopg.Error as exc:  # its message may quote a piece of the URL it could not read
            raise type(exc)(redacted(str(exc), self.url)) from None
        for name, seconds in (
            ("lock_timeout", self.lock_timeout),
            ("statement_timeout", self.statement_timeout),
            ("idle_in_transaction_session_timeout", self.idle_in_transaction_timeout),
        ):
            connection.execute(f"SET {name} = {int(seconds * 1000)}")
        return connection

    def rows(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        """One array parameter per column, unnested, sent in binary: psycopg adapts a column at
        a time (in C) with nothing to escape, and the server parses a handful of parameters
        instead of thousands."""
        arrays = ", ".join(f"%b::{type_}[]" for type_ in types)
        return f"SELECT * FROM unnest({arrays})", [list(column) for column in zip(*rows, strict=True)]

    def table(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        arrays = ", ".join(f"%b::{type_}[]" for type_ in types)
        names = ", ".join(f"column{number}" for number in range(1, len(types) + 1))
        return f"unnest({arrays}) AS k({names})", [list(column) for column in zip(*rows, strict=True)]

    def any_of(self, type_: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return f"= ANY(%b::{type_}[])", [list(values)]

    def lock_schema(self, connection: DriverConnection) -> None:
        connection.execute("BEGIN")
        connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))

    def statements(self, migration: SchemaMigration) -> tuple[str, ...]:
        return migration.postgres

    def classify(self, error: Exception, connection: DriverConnection | None) -> type[Exception] | None:
        text = str(error)
        refused = "FATAL" in text and any(words in text for words in _REFUSED)
        if isinstance(error, psycopg.OperationalError) and refused:
            return StoreRefused
        if isinstance(error, _CONFLICTS):
            return StoreConflict
        if isinstance(error, _UNAVAILABLE):
            return StoreUnavailable
        if isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)):
            broken = (
                connection is None
                or getattr(connection, "closed", True)
                or getattr(connection, "broken", False)
            )
            return StoreUnavailable if broken else None
        return None


@lru_cache(maxsize=1024)
def pyformat(statement: str) -> str:
    """The statement with psycopg's `%s` for each `?` placeholder; a `?` inside a quoted string
    or identifier is left alone. Remembered: the store runs a few hundred distinct statements,
    over and over."""
    return _QMARK.sub(lambda found: "%s" if found.group() == "?" else found.group(), statement)


# A quoted string ('' inside it is a quote), a quoted identifier, or a placeholder.
_QMARK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|\?")


def postgres_backend(
    url: str, *, lock_timeout: float, statement_timeout: float, idle_in_transaction_timeout: float
) -> PostgresBackend:
    return PostgresBackend(url, lock_timeout, statement_timeout, idle_in_transaction_timeout)
