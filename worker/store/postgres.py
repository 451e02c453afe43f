"""PostgreSQL, for deployments that already run it; same SQL as SQLite, `%s` placeholders."""

import psycopg

from worker.redaction import masked
from worker.store.sql import SqlStore

SCHEMA = """
CREATE TABLE IF NOT EXISTS owner_settings (
    partner_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    owner TEXT,
    contact TEXT,
    changed_at_us BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    PRIMARY KEY (partner_id, client_id)
);
CREATE TABLE IF NOT EXISTS decision_makers (
    client_id TEXT PRIMARY KEY,
    contact TEXT NOT NULL,
    seen_at_us BIGINT NOT NULL,
    event_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS inbox (
    event_id TEXT PRIMARY KEY,
    processed_at_us BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS reminders (
    client_id TEXT NOT NULL,
    renewal_date TEXT NOT NULL,
    days_until_renewal INTEGER NOT NULL,
    notification_id TEXT NOT NULL,
    PRIMARY KEY (client_id, renewal_date, days_until_renewal)
);
CREATE TABLE IF NOT EXISTS handling_attempts (
    message_key TEXT PRIMARY KEY,
    attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    notification_id TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    routing_key TEXT NOT NULL,
    body BYTEA NOT NULL,
    created_at_us BIGINT NOT NULL
);
"""


def open_postgres(url: str) -> SqlStore:
    connection = psycopg.connect(url, autocommit=True)
    connection.execute(SCHEMA)
    return SqlStore(
        connection,
        placeholder="%s",
        transient_errors=(psycopg.OperationalError,),
        description=masked(url),
        # Event ids are compared by code point, as Python does, not by the database's locale.
        binary_collation='"C"',
    )
