"""The embedded default store: one SQLite file in WAL mode."""

import sqlite3
from pathlib import Path

from worker.store.sql import SqlStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS owner_settings (
    partner_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    owner TEXT,
    contact TEXT,
    changed_at_us INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (partner_id, client_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS decision_makers (
    client_id TEXT PRIMARY KEY,
    contact TEXT NOT NULL,
    seen_at_us INTEGER NOT NULL,
    event_id TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS inbox (
    event_id TEXT PRIMARY KEY,
    processed_at_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reminders (
    client_id TEXT NOT NULL,
    renewal_date TEXT NOT NULL,
    days_until_renewal INTEGER NOT NULL,
    notification_id TEXT NOT NULL,
    PRIMARY KEY (client_id, renewal_date, days_until_renewal)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS handling_attempts (
    message_key TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    notification_id TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at_us INTEGER NOT NULL
);
"""


def open_sqlite(url: str) -> SqlStore:
    """`sqlite:///relative.db`, `sqlite:////absolute.db` or `sqlite:///:memory:`."""
    path = url.removeprefix("sqlite://").removeprefix("/") or ":memory:"
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=5.0)
    connection.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed batch survives power loss too, since its messages are acked after it.
    connection.execute("PRAGMA synchronous=FULL")
    # Checkpoint the WAL every ~40 MB rather than every 4 MB: fewer stalls inside a batch.
    connection.execute("PRAGMA wal_autocheckpoint=10000")
    connection.executescript(SCHEMA)
    return SqlStore(
        connection,
        placeholder="?",
        transient_errors=(sqlite3.OperationalError,),
        description=f"sqlite:///{path}",
        # Take the write lock up front: a busy file then fails the batch once, not every message.
        begin="BEGIN IMMEDIATE",
    )
