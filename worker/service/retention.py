"""Keeping the store's size level: expired inbox entries, reminder keys, crash counts, the
reminder ledger and owner history past their window, and resolved dead letters (with their
history) are deleted a few at a time, between batches, so
pruning never holds processing up."""

import time
from datetime import UTC, datetime, timedelta

from worker.dead_letters.records import DeadLetterRecords
from worker.settings import Settings
from worker.store import SqlStore

# Seconds to the next round while a round still finds a full chunk to delete: none, so that
# a worker working through a backlog prunes after every batch (up to a chunk of each kind per
# batch) and keeps up with what it inserts; one round a second could not (1,000 rows a second).
_SOON = 0.0


class Retention:
    def __init__(
        self,
        store: SqlStore,
        settings: Settings,
        *,
        letters: DeadLetterRecords | None = None,
        chunk: int = 1000,
    ) -> None:
        self._store = store
        self._inbox_days = settings.inbox_retention_days
        self._reminder_days = settings.reminder_retention_days
        self._ledger_days = settings.ledger_retention_days
        self._letter_days = settings.dead_letter_retention_days
        self._letters = letters
        self._every = settings.prune_interval
        self._chunk = chunk
        self.next_round = time.monotonic() + min(self._every, 5.0)

    def prune_if_due(self) -> int:
        """One round if it is time: at most one chunk of each kind; how many rows went."""
        if time.monotonic() < self.next_round:
            return 0
        now = datetime.now(UTC)
        deleted = self._store.prune(
            processed_before_us=int((now - timedelta(days=self._inbox_days)).timestamp() * 1_000_000),
            renewals_before=(now - timedelta(days=self._reminder_days)).date(),
            limit=self._chunk,
            ledger_before_us=int((now - timedelta(days=self._ledger_days)).timestamp() * 1_000_000),
        )
        if self._letters is not None:
            deleted += self._letters.prune_resolved(
                resolved_before=now - timedelta(days=self._letter_days), limit=self._chunk
            )
        self.next_round = time.monotonic() + (_SOON if deleted >= self._chunk else self._every)
        return deleted
