"""The store's schema, as numbered migrations: each applied once, in order, under a lock, and
recorded in `schema_version`. A store newer than this code refuses to be opened by it.

Upgrade order: run `renewals store migrate` with the new version (or start one new worker,
which migrates at start), then replace the workers one by one. Migrations only add, so the
workers still running the previous version keep working against the migrated schema.
"""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    sqlite: tuple[str, ...]
    postgres: tuple[str, ...]


def _same(*statements: str) -> tuple[str, ...]:
    return statements


INITIAL_SQLITE = (
    """CREATE TABLE IF NOT EXISTS owner_settings (
        partner_id TEXT NOT NULL, client_id TEXT NOT NULL, owner TEXT, contact TEXT,
        changed_at_us INTEGER NOT NULL, event_id TEXT NOT NULL,
        PRIMARY KEY (partner_id, client_id)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS decision_makers (
        client_id TEXT PRIMARY KEY, contact TEXT NOT NULL,
        seen_at_us INTEGER NOT NULL, event_id TEXT NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS inbox (
        event_id TEXT PRIMARY KEY, processed_at_us INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS reminders (
        client_id TEXT NOT NULL, renewal_date TEXT NOT NULL, days_until_renewal INTEGER NOT NULL,
        notification_id TEXT NOT NULL,
        PRIMARY KEY (client_id, renewal_date, days_until_renewal)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS handling_attempts (
        message_key TEXT PRIMARY KEY, attempts INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS outbox (
        seq INTEGER PRIMARY KEY, notification_id TEXT NOT NULL, correlation_id TEXT NOT NULL,
        routing_key TEXT NOT NULL, body BLOB NOT NULL, created_at_us INTEGER NOT NULL)""",
)

INITIAL_POSTGRES = (
    """CREATE TABLE IF NOT EXISTS owner_settings (
        partner_id TEXT NOT NULL, client_id TEXT NOT NULL, owner TEXT, contact TEXT,
        changed_at_us BIGINT NOT NULL, event_id TEXT NOT NULL,
        PRIMARY KEY (partner_id, client_id))""",
    """CREATE TABLE IF NOT EXISTS decision_makers (
        client_id TEXT PRIMARY KEY, contact TEXT NOT NULL,
        seen_at_us BIGINT NOT NULL, event_id TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS inbox (
        event_id TEXT PRIMARY KEY, processed_at_us BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS reminders (
        client_id TEXT NOT NULL, renewal_date TEXT NOT NULL, days_until_renewal INTEGER NOT NULL,
        notification_id TEXT NOT NULL,
        PRIMARY KEY (client_id, renewal_date, days_until_renewal))""",
    """CREATE TABLE IF NOT EXISTS handling_attempts (
        message_key TEXT PRIMARY KEY, attempts INTEGER NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS outbox (
        seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, notification_id TEXT NOT NULL,
        correlation_id TEXT NOT NULL, routing_key TEXT NOT NULL, body BYTEA NOT NULL,
        created_at_us BIGINT NOT NULL)""",
)

MIGRATIONS = (
    # Version 1 is the schema the first release created without a version table; IF NOT
    # EXISTS makes it a no-op on such a store, which is thereby adopted.
    Migration(1, "projection, inbox, reminder keys, crash counts, outbox", INITIAL_SQLITE, INITIAL_POSTGRES),
    Migration(
        2,
        "retention indexes, crash-count age, outbox claims",
        _same(
            "CREATE INDEX IF NOT EXISTS inbox_processed_at ON inbox (processed_at_us)",
            "CREATE INDEX IF NOT EXISTS reminders_renewal_date ON reminders (renewal_date)",
            "ALTER TABLE handling_attempts ADD COLUMN last_at_us INTEGER NOT NULL DEFAULT 0",
            "ALTER TABLE outbox ADD COLUMN claimed_until_us INTEGER",
        ),
        _same(
            "CREATE INDEX IF NOT EXISTS inbox_processed_at ON inbox (processed_at_us)",
            "CREATE INDEX IF NOT EXISTS reminders_renewal_date ON reminders (renewal_date)",
            "ALTER TABLE handling_attempts ADD COLUMN last_at_us BIGINT NOT NULL DEFAULT 0",
            "ALTER TABLE outbox ADD COLUMN claimed_until_us BIGINT",
        ),
    ),
    Migration(
        3,
        "outbox rows set aside (a notification that cannot be encoded, with the reason)",
        _same("ALTER TABLE outbox ADD COLUMN set_aside TEXT"),
        _same("ALTER TABLE outbox ADD COLUMN set_aside TEXT"),
    ),
)

LATEST = MIGRATIONS[-1].version

VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at_us BIGINT NOT NULL)"""


class SchemaTooNew(Exception):
    """The store was migrated by a newer release than this one."""

    def __init__(self, found: int) -> None:
        super().__init__(
            f"the store's schema is version {found}, newer than version {LATEST} that this worker knows:"
            " run the newer release (migrate first, then replace the workers)"
        )
        self.found = found


class SchemaTooOld(Exception):
    """The store needs migrating and this process was told not to."""

    def __init__(self, found: int) -> None:
        super().__init__(
            f"the store's schema is version {found}, older than version {LATEST}:"
            " run `renewals store migrate` (or start the worker with RENEWALS_STORE_MIGRATE=true)"
        )
        self.found = found
