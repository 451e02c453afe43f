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

# sqlite3 binds an int, a float or a str as it is, but takes any other value (None, bytes, a
# bool) for one that may need adapting: it looks for an adapter, then for `__adapt__`, which
# raises and clears an AttributeError with a formatted message: about 3,000 instructions a
# value, and a ledger row holds about eight NULLs. A registered adapter is found at once; these
# give each value back as it is bound anyway (a bool as the int it is). Process-wide, and the
# same for every other user of sqlite3 in the process.
sqlite3.register_adapter(type(None), lambda _null: None)
sqlite3.register_adapter(bytes, bytes)  # bytes() returns a bytes object as it is
sqlite3.register_adapter(bool, int)


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

    # A list's text changes with its number of rows, and sqlite3 prepares each new text again:
    # at about 500 instructions a character, a twentieth of the worker's CPU when every batch
    # read its keys anew. A table or list to match against is padded to the next power of two
    # with copies of its last row, which match what it matches: a handful of texts, prepared
    # once each (sqlite3 keeps the last 128). Rows to insert cannot be padded.

    def table(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        source, params = self.rows(types, _padded(rows))
        return f"({source}) AS k", params  # SQLite names a VALUES table's columns column1, column2...

    def any_of(self, type_: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        padded = _padded(values)
        return "IN (" + ", ".join("?" * len(padded)) + ")", padded

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


def _padded(items: Sequence[Any]) -> list[Any]:
    """The items, the last repeated up to a power of two of them (none: none)."""
    padded = list(items)
    if padded:
        padded += [padded[-1]] * ((1 << (len(padded) - 1).bit_length()) - len(padded))
    return padded


def _marks(count: int, width: int) -> str:
    row = "(" + ", ".join("?" * width) + ")"
    return ", ".join([row] * count)


def sqlite_backend(url: str, *, busy_timeout: float) -> SqliteBackend:
    """`sqlite:///relative.db`, `sqlite:////absolute.db` or `sqlite:///:memory:`."""
    path = url.removeprefix("sqlite://").removeprefix("/") or ":memory:"
    return SqliteBackend(path, busy_timeout)
