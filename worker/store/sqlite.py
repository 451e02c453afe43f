"""The embedded default store: one SQLite file in WAL mode."""

import os
import sqlite3
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worker.store.backend import DriverConnection
from worker.store.model import StoreRefused, StoreUnavailable
from worker.store.projection_writes import SerializedWrites
from worker.store.schema import SchemaMigration

# An operational error with one of these in its message is the file being unavailable (held by
# another writer past the busy timeout, or the disk refusing): waited out, never a retry.
_UNAVAILABLE = ("locked", "busy", "disk", "unable to open", "readonly")
CACHE_KIB = 32 * 1024


@dataclass
class SqliteBackend:
    path: str
    busy_timeout: float = 5.0
    kind: str = "sqlite"
    # Take the write lock up front: a busy file then fails the batch at its start, not midway.
    begin: str = "BEGIN IMMEDIATE"
    # Deferred: only reads, so never the write lock; in WAL mode a reader neither waits for
    # the writer nor holds it up.
    begin_read_only: str = "BEGIN"
    binary_collation: str = "BINARY"
    skip_locked: str = ""  # one writer at a time: nothing to skip
    others_commits: str | None = "PRAGMA data_version"

    @property
    def description(self) -> str:
        return f"sqlite:///{self.path}"

    @property
    def placeholders(self) -> None:
        return None  # sqlite3 takes `?` itself

    def writes(self) -> SerializedWrites:
        """A batch holds the write lock from its BEGIN IMMEDIATE: what it read is what it
        writes over."""
        return SerializedWrites(self)

    def connect(self) -> DriverConnection:
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            _create_private(self.path)
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=self.busy_timeout
        )
        connection.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch survives power loss too, since its messages are acked after it.
        connection.execute("PRAGMA synchronous=FULL")
        # Checkpoint the WAL every ~40 MB rather than every 4 MB: fewer stalls inside a batch.
        connection.execute("PRAGMA wal_autocheckpoint=10000")
        # Up to 32 MiB of pages per connection, not SQLite's 2 MiB: a batch inserts into several
        # indexes at random places, and a page read back from the OS at every insert cost the
        # worker about a tenth of its CPU (docs/development.md#benchmark). Taken only as used.
        connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        return connection

    def rows(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        return "VALUES " + _marks(len(rows), len(types)), [value for row in rows for value in row]

    def table(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        source, params = self.rows(types, rows)
        return f"({source}) AS k", params  # SQLite names a VALUES table's columns column1, column2...

    def any_of(self, type_: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        return "IN (" + ", ".join("?" * len(values)) + ")", list(values)

    def lock_schema(self, connection: DriverConnection) -> None:
        connection.execute("BEGIN EXCLUSIVE")

    def statements(self, migration: SchemaMigration) -> tuple[str, ...]:
        return migration.sqlite

    def classify(self, error: Exception, connection: DriverConnection | None) -> type[Exception] | None:
        if isinstance(error, sqlite3.OperationalError) and any(
            word in str(error).lower() for word in _UNAVAILABLE
        ):
            return StoreUnavailable
        if isinstance(error, sqlite3.DatabaseError) and error.sqlite_errorcode == sqlite3.SQLITE_NOTADB:
            return StoreRefused  # the URL names some other file: no retry makes it a store
        return None


def _create_private(path: str) -> None:
    """Create the store file readable by its owner only (0600, whatever the umask), before
    SQLite opens it: it holds personal data (contacts, dead letters). SQLite gives its WAL and
    shared-memory files the same permissions. An existing file is left as it is."""
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))


def _marks(count: int, width: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * count)


def sqlite_backend(url: str, *, busy_timeout: float) -> SqliteBackend:
    """`sqlite:///relative.db`, `sqlite:////absolute.db` or `sqlite:///:memory:`."""
    path = url.removeprefix("sqlite://").removeprefix("/") or ":memory:"
    return SqliteBackend(path, busy_timeout)
