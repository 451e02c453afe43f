"""The store's schema, as numbered migrations: each applied once, in order, under a lock, and
recorded in `schema_version`. A store newer than this code refuses to be opened by it.

Upgrade order: run `renewals store migrate` with the new version (or start one new worker,
which migrates at start), then replace the workers one by one. Migrations only add, so the
workers still running the previous version keep working against the migrated schema.
"""

from dataclasses import dataclass

from worker.store.model import StoreError


@dataclass(frozen=True, slots=True)
class SchemaMigration:
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


def _dead_letters(ints: str, blob: str, real: str, identity: str) -> tuple[str, ...]:
    """Migration 3 for one backend: dead letters as records (worker/dead_letters/records.py)."""
    return (
        f"""CREATE TABLE IF NOT EXISTS dead_letters (
            id {identity}, letter_key TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
            received_at_us {ints} NOT NULL, failed_at_us {ints}, seen_at_us {ints} NOT NULL,
            resolved_at_us {ints}, reason TEXT NOT NULL, detail TEXT NOT NULL, fingerprint TEXT NOT NULL,
            event_id TEXT, event_type TEXT, message_id TEXT, origin_exchange TEXT, origin_routing_key TEXT,
            attempts {ints}, replays {ints} NOT NULL, trace_parent TEXT, search_text TEXT NOT NULL,
            body {blob} NOT NULL, body_size {ints} NOT NULL, body_sha256 TEXT,
            properties TEXT NOT NULL, headers TEXT NOT NULL, problem TEXT,
            claimed_by TEXT, claimed_until_us {ints})""",
        "CREATE INDEX IF NOT EXISTS dead_letters_status ON dead_letters (status, id)",
        "CREATE INDEX IF NOT EXISTS dead_letters_reason ON dead_letters (reason, id)",
        "CREATE INDEX IF NOT EXISTS dead_letters_type ON dead_letters (event_type, id)",
        "CREATE INDEX IF NOT EXISTS dead_letters_event_id ON dead_letters (event_id)",
        "CREATE INDEX IF NOT EXISTS dead_letters_fingerprint"
        " ON dead_letters (fingerprint, status, seen_at_us)",
        "CREATE INDEX IF NOT EXISTS dead_letters_failed_at ON dead_letters (failed_at_us)",
        "CREATE INDEX IF NOT EXISTS dead_letters_seen_at ON dead_letters (seen_at_us)",
        "CREATE INDEX IF NOT EXISTS dead_letters_resolved_at ON dead_letters (resolved_at_us)"
        " WHERE resolved_at_us IS NOT NULL",
        """CREATE TABLE IF NOT EXISTS dead_letter_groups (
            fingerprint TEXT PRIMARY KEY, reason TEXT NOT NULL, event_type TEXT, pattern TEXT NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS dead_letter_history (
            seq {identity}, letter_id {ints} NOT NULL, at_us {ints} NOT NULL, kind TEXT NOT NULL,
            actor TEXT NOT NULL, operation_id TEXT, to_exchange TEXT, to_routing_key TEXT,
            outcome TEXT, message_id TEXT, text TEXT)""",
        "CREATE INDEX IF NOT EXISTS dead_letter_history_letter ON dead_letter_history (letter_id, seq)",
        "CREATE INDEX IF NOT EXISTS dead_letter_history_operation"
        " ON dead_letter_history (operation_id, letter_id) WHERE operation_id IS NOT NULL",
        f"""CREATE TABLE IF NOT EXISTS dead_letter_replays (
            id TEXT PRIMARY KEY, actor TEXT NOT NULL, selection TEXT NOT NULL, status TEXT NOT NULL,
            rate {real}, to_original INTEGER NOT NULL, force INTEGER NOT NULL, max_replays INTEGER NOT NULL,
            dry_run INTEGER NOT NULL, started_at_us {ints} NOT NULL, updated_at_us {ints} NOT NULL,
            total {ints} NOT NULL, replayed {ints} NOT NULL DEFAULT 0, skipped {ints} NOT NULL DEFAULT 0,
            failed {ints} NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0)""",
        "CREATE INDEX IF NOT EXISTS dead_letter_replays_started ON dead_letter_replays (started_at_us)",
        f"""CREATE TABLE IF NOT EXISTS dead_letter_audit (
            seq {identity}, at_us {ints} NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
            operation_id TEXT, selection TEXT NOT NULL, counts TEXT NOT NULL, result TEXT NOT NULL)""",
    )


def _dead_letter_edits(ints: str, blob: str, identity: str) -> tuple[str, ...]:
    """Migration 10 for one backend: an edited letter's before and after, whole (its body and
    headers both ways), kept as long as the letter and pruned with it."""
    return (
        f"""CREATE TABLE IF NOT EXISTS dead_letter_edits (
            seq {identity}, letter_id {ints} NOT NULL, operation_id TEXT NOT NULL, at_us {ints} NOT NULL,
            actor TEXT NOT NULL, body_before {blob} NOT NULL, body_after {blob} NOT NULL,
            headers_before TEXT NOT NULL, headers_after TEXT NOT NULL, message_id TEXT NOT NULL,
            to_exchange TEXT NOT NULL, to_routing_key TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS dead_letter_edits_letter ON dead_letter_edits (letter_id, seq)",
    )


def _console_sessions(ints: str) -> tuple[str, ...]:
    """Migration 5 for one backend: the console's signed-in sessions, so that they can end."""
    return (
        f"""CREATE TABLE IF NOT EXISTS console_sessions (
            sid_digest TEXT PRIMARY KEY, user_name TEXT NOT NULL, fingerprint TEXT NOT NULL,
            created_at_us {ints} NOT NULL, seen_at_us {ints} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS console_sessions_user ON console_sessions (user_name)",
        "CREATE INDEX IF NOT EXISTS console_sessions_seen ON console_sessions (seen_at_us)",
    )


def _ledger(ints: str, identity: str) -> tuple[str, ...]:
    """Migration 6 for one backend: the reminder ledger (one row per RenewalApproaching handled,
    with its decision and why) and the owner history (every OwnerChanged, won or lost)."""
    return (
        f"""CREATE TABLE IF NOT EXISTS reminder_ledger (
            seq {identity}, event_id TEXT NOT NULL, partner_id TEXT NOT NULL, client_id TEXT NOT NULL,
            renewal_date TEXT NOT NULL, days_until_renewal {ints} NOT NULL, handled_at_us {ints} NOT NULL,
            outcome TEXT NOT NULL, reason TEXT, rule_row {ints}, resolved_from TEXT, fallback TEXT,
            to_address TEXT, cc_address TEXT,
            owner TEXT, owner_scope TEXT, owner_event_id TEXT, owner_changed_at_us {ints},
            decision_maker TEXT, decision_maker_event_id TEXT,
            notification_id TEXT, published_at_us {ints}, confirmed_at_us {ints},
            letter_id {ints}, replay_operation TEXT, detail TEXT)""",
        # A client's reminders, newest first, of one partner or any: `renewals reminders --client`.
        "CREATE INDEX IF NOT EXISTS reminder_ledger_client"
        " ON reminder_ledger (client_id, partner_id, handled_at_us)",
        "CREATE INDEX IF NOT EXISTS reminder_ledger_partner ON reminder_ledger (partner_id, handled_at_us)",
        "CREATE INDEX IF NOT EXISTS reminder_ledger_notification"
        " ON reminder_ledger (notification_id) WHERE notification_id IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS reminder_ledger_event ON reminder_ledger (event_id)",
        "CREATE INDEX IF NOT EXISTS reminder_ledger_to ON reminder_ledger (to_address)"
        " WHERE to_address IS NOT NULL",
        "CREATE INDEX IF NOT EXISTS reminder_ledger_cc ON reminder_ledger (cc_address)"
        " WHERE cc_address IS NOT NULL",
        f"""CREATE TABLE IF NOT EXISTS owner_history (
            seq {identity}, partner_id TEXT NOT NULL, client_id TEXT NOT NULL,
            owner_before TEXT, contact_before TEXT, owner_after TEXT, contact_after TEXT,
            event_id TEXT NOT NULL, changed_at_us {ints} NOT NULL, received_at_us {ints} NOT NULL,
            won INTEGER NOT NULL, lost_to_event_id TEXT)""",
        "CREATE INDEX IF NOT EXISTS owner_history_key"
        " ON owner_history (partner_id, client_id, changed_at_us)",
        "CREATE INDEX IF NOT EXISTS owner_history_received ON owner_history (received_at_us)",
    )


def _replay_fates(ints: str) -> tuple[str, ...]:
    """Migration 7 for one backend: what became of each replayed letter (its fate: resolved or
    failed again, the notification it caused or the letter it came back as, and the operation
    whose copy it was), the letter a new one came from, history entries that link a letter,
    and a replay's canary and brake (worker/dead_letters/fates.py)."""
    return (
        "ALTER TABLE dead_letters ADD COLUMN fate TEXT",
        f"ALTER TABLE dead_letters ADD COLUMN fate_at_us {ints}",
        "ALTER TABLE dead_letters ADD COLUMN fate_operation_id TEXT",
        "ALTER TABLE dead_letters ADD COLUMN fate_detail TEXT",
        f"ALTER TABLE dead_letters ADD COLUMN next_letter_id {ints}",
        f"ALTER TABLE dead_letters ADD COLUMN previous_letter_id {ints}",
        "CREATE INDEX IF NOT EXISTS dead_letters_fate"
        " ON dead_letters (fate_operation_id, fate_at_us) WHERE fate_operation_id IS NOT NULL",
        f"ALTER TABLE dead_letter_history ADD COLUMN linked_letter_id {ints}",
        f"ALTER TABLE dead_letter_replays ADD COLUMN canary {ints} NOT NULL DEFAULT 0",
        "ALTER TABLE dead_letter_replays ADD COLUMN canary_result TEXT",
        "ALTER TABLE dead_letter_replays ADD COLUMN pause_reason TEXT",
        f"ALTER TABLE dead_letter_replays ADD COLUMN brake_from_us {ints} NOT NULL DEFAULT 0",
    )


def _erasures(ints: str, identity: str) -> tuple[str, ...]:
    """Migration 8 for one backend: one audit row per erasure of a client's or a person's data
    (worker/erasure): what was erased where, by whom, and the SHA-256 of the subject, never
    the subject itself."""
    return (
        f"""CREATE TABLE IF NOT EXISTS erasures (
            seq {identity}, operation_id TEXT NOT NULL UNIQUE, at_us {ints} NOT NULL, actor TEXT NOT NULL,
            subject_kind TEXT NOT NULL, subject_sha256 TEXT NOT NULL, partner_id TEXT,
            counts TEXT NOT NULL, unreachable TEXT NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS erasures_subject ON erasures (subject_sha256, at_us)",
    )


def _leaner_ledger(ints: str) -> tuple[str, ...]:
    """Migration 11 for one backend (issue 30): each index on the ledger is written at a random
    place at every reminder. The event index answered no question; the notification index only
    let a confirm find its row, which the outbox row now numbers (`ledger_seq`, filled in for the
    rows waiting when the store is migrated, while the index is still there)."""
    return (
        f"ALTER TABLE outbox ADD COLUMN ledger_seq {ints}",
        "UPDATE outbox SET ledger_seq = (SELECT max(l.seq) FROM reminder_ledger AS l"
        " WHERE l.notification_id = outbox.notification_id AND l.outcome = 'notified')",
        "DROP INDEX IF EXISTS reminder_ledger_event",
        "DROP INDEX IF EXISTS reminder_ledger_notification",
    )


def _ledger_by_time(columns: str) -> tuple[str, ...]:
    """Migration 12 for one backend: the reminders of every client, newest first (the console's
    Reminders page unfiltered, or only by time), from an index instead of sorting the whole
    ledger: at a million rows SQLite took 1.7 s a page. Rows are handled in time order, so the
    index grows at its end: 0.02 pages written per reminder, against about 0.2 for each index
    keyed at random (`python -m bench.batches --wal-pages`)."""
    return (f"CREATE INDEX IF NOT EXISTS reminder_ledger_handled ON reminder_ledger ({columns})",)


def _scheduled_replays(ints: str) -> tuple[str, ...]:
    """Migration 9 for one backend: replays that wait for a time (`not_before_us`), and the
    claim a worker's housekeeping takes to run one (worker/dead_letters/schedule.py)."""
    return (
        f"ALTER TABLE dead_letter_replays ADD COLUMN not_before_us {ints}",
        "ALTER TABLE dead_letter_replays ADD COLUMN runner TEXT",
        f"ALTER TABLE dead_letter_replays ADD COLUMN runner_until_us {ints}",
        "CREATE INDEX IF NOT EXISTS dead_letter_replays_due ON dead_letter_replays (status, not_before_us)",
    )


MIGRATIONS = (
    # Version 1 is the schema the first release created without a version table; IF NOT
    # EXISTS makes it a no-op on such a store, which is thereby adopted.
    SchemaMigration(
        1, "projection, inbox, reminder keys, crash counts, outbox", INITIAL_SQLITE, INITIAL_POSTGRES
    ),
    SchemaMigration(
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
    SchemaMigration(
        3,
        "outbox rows set aside (a notification that cannot be encoded, with the reason)",
        _same("ALTER TABLE outbox ADD COLUMN set_aside TEXT"),
        _same("ALTER TABLE outbox ADD COLUMN set_aside TEXT"),
    ),
    SchemaMigration(
        4,
        "dead letters as records: letters, groups, history, replay operations, audit",
        _dead_letters("INTEGER", "BLOB", "REAL", "INTEGER PRIMARY KEY"),
        _dead_letters(
            "BIGINT", "BYTEA", "DOUBLE PRECISION", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
        ),
    ),
    SchemaMigration(
        5,
        "console sessions kept on the server (worker/store/console_sessions.py)",
        _console_sessions("INTEGER"),
        _console_sessions("BIGINT"),
    ),
    SchemaMigration(
        6,
        "the reminder ledger and the owner history (who was told what, and why)",
        _ledger("INTEGER", "INTEGER PRIMARY KEY"),
        _ledger("BIGINT", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
    ),
    SchemaMigration(
        7,
        "replays that close the loop: each replayed letter's fate, links, canary and brake",
        _replay_fates("INTEGER"),
        _replay_fates("BIGINT"),
    ),
    # Number 8 as issue 28's erasure was given it; the merge renumbers (MIGRATIONS is read by
    # position, so the versions must run without a gap once merged).
    SchemaMigration(
        8,
        "erasures: the audit of each erasure of a client's or a person's data",
        _erasures("INTEGER", "INTEGER PRIMARY KEY"),
        _erasures("BIGINT", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
    ),
    SchemaMigration(
        9,
        "scheduled replays: a time to wait for, and the claim of the worker that runs one",
        _scheduled_replays("INTEGER"),
        _scheduled_replays("BIGINT"),
    ),
    SchemaMigration(
        10,
        "dead letters edited and retried: each edit's before and after (issue 27)",
        _dead_letter_edits("INTEGER", "BLOB", "INTEGER PRIMARY KEY"),
        _dead_letter_edits("BIGINT", "BYTEA", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"),
    ),
    SchemaMigration(
        11,
        "the reminder ledger with two indexes fewer (every batch paid for them): a confirm finds"
        " its ledger row by number, kept in the outbox row",
        _leaner_ledger("INTEGER"),
        _leaner_ledger("BIGINT"),
    ),
    SchemaMigration(
        12,
        "the reminder ledger by time handled: the newest reminders of every client without a sort",
        _ledger_by_time("handled_at_us"),  # SQLite adds the row's number (seq) to every index
        _ledger_by_time("handled_at_us, seq"),
    ),
)

LATEST = MIGRATIONS[-1].version

VERSION_TABLE = """CREATE TABLE IF NOT EXISTS schema_version (
    version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at_us BIGINT NOT NULL)"""


class SchemaTooNew(StoreError):
    """The store was migrated by a newer release than this one."""

    def __init__(self, found: int) -> None:
        super().__init__(
            f"the store's schema is version {found}, newer than version {LATEST} that this worker knows:"
            " run the newer release (migrate first, then replace the workers)"
        )
        self.found = found


class SchemaTooOld(StoreError):
    """The store needs migrating and this process was told not to."""

    def __init__(self, found: int) -> None:
        super().__init__(
            f"the store's schema is version {found}, older than version {LATEST}:"
            " run `renewals store migrate` (or start the worker with RENEWALS_STORE_MIGRATE=true)"
        )
        self.found = found
