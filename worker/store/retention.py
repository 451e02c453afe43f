"""Retention: what the worker keeps only for a while (inbox entries, crash counts, reminder keys
of renewals gone by, the reminder ledger and the owner history) is deleted a bounded chunk at a
time, between batches."""

from datetime import date

from worker.store.connection import SqlConnection

# Each kind of expired row: the statement that deletes at most `limit` of them, given the bound.
_EXPIRED = {
    "inbox": "DELETE FROM inbox WHERE event_id IN"
    " (SELECT event_id FROM inbox WHERE processed_at_us < ? LIMIT ?)",
    "reminders": "DELETE FROM reminders WHERE (client_id, renewal_date, days_until_renewal) IN"
    " (SELECT client_id, renewal_date, days_until_renewal FROM reminders WHERE renewal_date < ? LIMIT ?)",
    "handling_attempts": "DELETE FROM handling_attempts WHERE message_key IN"
    " (SELECT message_key FROM handling_attempts WHERE last_at_us < ? LIMIT ?)",
    # The ledger is written in time order, so its oldest rows are its first: the first `limit`
    # by seq are looked at, and those handled before the bound go (no index on the time to
    # keep up at every insert; a row stamped by a clock running ahead waits its turn).
    "reminder_ledger": "DELETE FROM reminder_ledger WHERE handled_at_us < ?"
    " AND seq IN (SELECT seq FROM reminder_ledger ORDER BY seq LIMIT ?)",
    "owner_history": "DELETE FROM owner_history WHERE seq IN"
    " (SELECT seq FROM owner_history WHERE received_at_us < ? LIMIT ?)",
}


class RetentionRows:
    def __init__(self, connection: SqlConnection) -> None:
        self._db = connection

    def prune(
        self,
        *,
        processed_before_us: int,
        renewals_before: date,
        limit: int,
        ledger_before_us: int | None = None,
    ) -> int:
        """Delete at most `limit` expired rows of each kind, each kind in its own short
        transaction; how many went. Inbox entries and crash counts older than the window,
        reminder keys of renewals before the given date, and (given its bound) ledger and
        owner-history rows handled before `ledger_before_us`."""
        bounds = {
            "inbox": processed_before_us,
            "reminders": renewals_before.isoformat(),
            "handling_attempts": processed_before_us,
            "reminder_ledger": ledger_before_us,
            "owner_history": ledger_before_us,
        }
        deleted = 0
        for table, statement in _EXPIRED.items():
            if bounds[table] is None:
                continue
            with self._db.writing():
                deleted += max(self._db.execute(statement, (bounds[table], limit)).rowcount, 0)
        return deleted

    def forget_attempts(self, message_key: str) -> None:
        """Drop a message's crash count, in a transaction of its own."""
        with self._db.writing():
            forget_attempts(self._db, message_key)


def forget_attempts(connection: SqlConnection, message_key: str) -> None:
    """Drop a message's crash count, in the transaction under way."""
    connection.execute("DELETE FROM handling_attempts WHERE message_key = ?", (message_key,))
