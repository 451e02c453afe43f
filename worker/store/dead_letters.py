"""The dead-letter recorder: letters as rows in the worker's store, SQLite and PostgreSQL alike.

`DeadLetterRecords(store)` is what the worker's drain, `renewals dlq` and the console use.
Every method is one short transaction of its own; none holds a lock between calls. Two
processes may use the same store at once: inserts are idempotent, replays claim each letter
before publishing it (on PostgreSQL with `FOR UPDATE SKIP LOCKED`; on SQLite the write lock
serialises), and cancelling a replay is a flag on its row that the running replay reads.
"""

from collections.abc import Iterator, Sequence
from datetime import datetime

from worker.store.letters import (
    AuditEntry,
    Claimed,
    Group,
    HistoryEntry,
    LetterFilter,
    NewLetter,
    Page,
    ReplayOperation,
    StoredLetter,
)
from worker.store.sql import SqlStore

UNRESOLVED = LetterFilter()  # every letter nobody has acted on yet


class UnknownOperation(Exception):
    """No replay operation has this id."""


class OperationBusy(Exception):
    """The replay operation is running in another process (its heartbeat is fresh)."""


class DeadLetterRecords:
    """The dead letters of one store. Build it over an open (migrated) `SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    # --- arriving ----------------------------------------------------------------------------

    def insert(self, letters: Sequence[NewLetter], *, at: datetime | None = None) -> int:
        """Record letters drained from the queue, in one transaction; how many were new.

        Idempotent: a letter already recorded (same `NewLetter.key`) is left as it is, so a
        redelivery after a kill between this commit and the ack leaves one row.
        """
        raise NotImplementedError

    # --- reading -----------------------------------------------------------------------------

    def page(
        self,
        selection: LetterFilter = UNRESOLVED,
        *,
        after: int | None = None,
        limit: int = 50,
        newest_first: bool = False,
    ) -> Page:
        """A keyset page of letters matching `selection`, in arrival order (or newest first);
        `after` is the `next_after` of the previous page."""
        raise NotImplementedError

    def count(self, selection: LetterFilter = UNRESOLVED) -> int:
        """How many letters match (the selection's `limit` caps it)."""
        raise NotImplementedError

    def get(self, letter_id: int) -> StoredLetter | None:
        """One letter in full, with its history and notes; None if there is none (or it was
        pruned)."""
        raise NotImplementedError

    def find(self, event_id: str) -> list[StoredLetter]:
        """Every letter of this event id (any status), oldest first."""
        raise NotImplementedError

    def letters(self, selection: LetterFilter, *, batch: int = 500) -> Iterator[StoredLetter]:
        """Every letter matching, in full, in arrival order, read a batch at a time (export)."""
        raise NotImplementedError

    def groups(
        self,
        selection: LetterFilter = UNRESOLVED,
        *,
        hours: int = 24,
        now: datetime | None = None,
        limit: int = 100,
    ) -> list[Group]:
        """The groups of the letters matching, largest first, each with its count, first and
        last seen, and a per-hour trend over the last `hours`."""
        raise NotImplementedError

    def history(self, letter_id: int) -> list[HistoryEntry]:
        """What happened to a letter, oldest first; [] for an unknown id."""
        raise NotImplementedError

    # --- acting --------------------------------------------------------------------------------

    def add_note(self, letter_id: int, text: str, *, actor: str) -> HistoryEntry:
        """Add a triage note; KeyError if there is no such letter."""
        raise NotImplementedError

    def archive(self, selection: LetterFilter, *, actor: str, operation_id: str | None = None) -> int:
        """Mark the matching unresolved letters archived; how many. Audited."""
        raise NotImplementedError

    def purge(self, selection: LetterFilter, *, actor: str, operation_id: str | None = None) -> int:
        """Mark the matching unresolved letters purged (their rows go at the next retention
        round past the retention period, their history with them); how many. Audited."""
        raise NotImplementedError

    def prune_resolved(self, *, resolved_before: datetime, limit: int) -> int:
        """Delete at most `limit` letters resolved before the time, with their history; how
        many. Unresolved letters are never pruned."""
        raise NotImplementedError

    # --- replays -------------------------------------------------------------------------------

    def start_replay(
        self,
        selection: LetterFilter,
        *,
        actor: str,
        rate: float | None,
        to_original: bool = False,
        force: bool = False,
        max_replays: int = 3,
        dry_run: bool = False,
        operation_id: str | None = None,
    ) -> ReplayOperation:
        """Record a new replay operation over the letters matching now (frozen: letters
        arriving later are not in it); status running."""
        raise NotImplementedError

    def operation(self, operation_id: str) -> ReplayOperation:
        """UnknownOperation if there is none."""
        raise NotImplementedError

    def operations(self, *, limit: int = 20) -> list[ReplayOperation]:
        """The latest replay operations, newest first."""
        raise NotImplementedError

    def resume(self, operation_id: str, *, actor: str, stale_after: float = 30.0) -> ReplayOperation:
        """Take up a cancelled or interrupted operation again (status running again).
        OperationBusy if it is running in a process that showed life within `stale_after`
        seconds; a finished one comes back unchanged."""
        raise NotImplementedError

    def request_cancel(self, operation_id: str, *, actor: str) -> ReplayOperation:
        """Ask a running replay to stop (from any process): it stops after the letter in
        hand, releases its claims and ends `cancelled`. Audited."""
        raise NotImplementedError

    def claim(self, operation_id: str, *, limit: int, lease: float = 60.0) -> list[Claimed]:
        """Claim up to `limit` letters of the operation's selection that are still new, not
        claimed by anyone (or whose claim's lease ran out) and not yet tried by this
        operation; in arrival order. Also the operation's heartbeat."""
        raise NotImplementedError

    def settle(
        self,
        claimed: Claimed,
        *,
        outcome: HistoryEntry,
    ) -> None:
        """Record what the replay did with one claimed letter and release it: `replayed`
        (the letter becomes replayed), `replay_failed` or `replay_skipped` (it stays new).
        Counts toward the operation's progress."""
        raise NotImplementedError

    def release(self, claimed: Sequence[Claimed]) -> None:
        """Give claimed letters back untried (a cancel, Ctrl-C)."""
        raise NotImplementedError

    def finish(self, operation_id: str, *, cancelled: bool = False) -> ReplayOperation:
        """End the operation (finished or cancelled) and write its audit entry."""
        raise NotImplementedError

    # --- audit ---------------------------------------------------------------------------------

    def audit(
        self,
        action: str,
        *,
        actor: str,
        selection: str,
        counts: dict[str, int],
        result: str,
        operation_id: str | None = None,
    ) -> AuditEntry:
        """Record an action that changed nothing in the store itself (an export, say)."""
        raise NotImplementedError

    def audit_log(self, *, limit: int = 100, operation_id: str | None = None) -> list[AuditEntry]:
        """The latest audit entries, newest first."""
        raise NotImplementedError
