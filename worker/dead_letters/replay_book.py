"""Replay operations as rows, and the claim that keeps one letter from being replayed twice at
once: by two operators, two consoles, or several workers on PostgreSQL.

A claim names the operation and a lease: a process that dies holding letters gives them up
when the lease runs out. Claiming takes rows nobody holds, `FOR UPDATE SKIP LOCKED` on
PostgreSQL (a replay claiming at the same moment skips them, never waits), under SQLite's write
lock otherwise. An operation's selection is frozen at its start (`up_to` the last row id then),
and a letter an operation has tried (replayed, skipped or failed) is not tried by it again, so
re-running the operation (a resume) takes up exactly what is left.
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace

from worker.dead_letters.model import Claimed, HistoryEntry, LetterFilter, LetterSummary, ReplayOperation
from worker.dead_letters.sql import (
    FULL_COLUMNS,
    OPERATION_COLUMNS,
    OPERATION_READ,
    SUMMARY_COLUMNS,
    clean,
    now_us,
    operation,
    stored,
    summary,
    to_us,
    where,
)
from worker.dead_letters.trail import Trail
from worker.store.model import StoreError
from worker.store.sql import SqlStore

_COUNTERS = {"replayed": "replayed", "replay_skipped": "skipped", "replay_failed": "failed"}


class UnknownOperation(StoreError):
    """No replay operation has this id."""


class OperationBusy(StoreError):
    """The replay operation is running in another process (its heartbeat is fresh)."""


@dataclass(frozen=True, slots=True)
class Outline:
    """A letter as a replay's preview reads it: its summary, how many bytes of its body are
    stored, and the full body's digest if it was cut; never the body, properties or headers."""

    summary: LetterSummary
    stored_body_size: int
    body_sha256: str | None


class ReplayBook:
    """Replay operations over one store's letters: started, claimed, settled, cancelled, ended."""

    def __init__(self, store: SqlStore, trail: Trail) -> None:
        self._store = store
        self._backend = store._backend
        self._trail = trail

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
        not_before_us: int | None = None,
        canary: int = 0,
    ) -> ReplayOperation:
        """Record a new replay operation over the unresolved letters matching now (frozen:
        letters arriving later are not in it); status running, or scheduled until
        `not_before_us` (worker/dead_letters/schedule.py runs it then). With a `canary`, that
        many letters go first, and the rest only once they resolved (`replays.run`)."""
        operation_id = operation_id or uuid.uuid4().hex[:12]
        selection = replace(selection, statuses=frozenset({"new"}))
        at_us = now_us()
        with self._store.transaction():
            sql, params = where(selection, self._backend)
            up_to, total = self._store.execute(
                f"SELECT max(id), count(*) FROM dead_letters WHERE {sql}", params
            ).fetchone()
            if up_to is None:
                up_to = self._store.execute("SELECT coalesce(max(id), 0) FROM dead_letters").fetchone()[0]
            frozen = replace(selection, limit=None, up_to=int(up_to))
            self._store.execute(
                f"INSERT INTO dead_letter_replays ({OPERATION_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, ?)",
                (
                    operation_id,
                    clean(actor),
                    json.dumps(frozen.as_json()),
                    "running" if not_before_us is None else "scheduled",
                    rate,
                    int(to_original),
                    int(force),
                    max_replays,
                    int(dry_run),
                    at_us,
                    at_us,
                    int(total),
                    not_before_us,
                ),
            )
            if canary:
                self._store.execute(
                    "UPDATE dead_letter_replays SET canary = ? WHERE id = ?", (canary, operation_id)
                )
        return self.operation(operation_id)

    def outlines(self, selection: LetterFilter, *, limit: int) -> list[Outline]:
        """The first `limit` letters matching, in arrival order, as a preview needs them: the
        summary's columns and the body's stored length (both stores read it from the row's
        header, not the body), so a preview of 500 letters of 16 MiB reads kilobytes."""
        sql, params = where(selection, self._backend)
        rows = self._store.execute(
            f"SELECT {SUMMARY_COLUMNS}, length(body), body_sha256 FROM dead_letters WHERE {sql}"
            " ORDER BY id LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [Outline(summary(row), int(row[16]), row[17]) for row in rows]

    def operation(self, operation_id: str) -> ReplayOperation:
        """UnknownOperation if there is none."""
        row = self._store.execute(
            f"SELECT {OPERATION_READ} FROM dead_letter_replays WHERE id = ?", (operation_id,)
        ).fetchone()
        if row is None:
            raise UnknownOperation(f"no replay operation {operation_id}")
        return operation(row)

    def operations(self, *, limit: int = 20) -> list[ReplayOperation]:
        """The latest replay operations, newest first."""
        rows = self._store.execute(
            f"SELECT {OPERATION_READ} FROM dead_letter_replays ORDER BY started_at_us DESC, id LIMIT ?",
            (limit,),
        ).fetchall()
        return [operation(row) for row in rows]

    def resume(self, operation_id: str, *, actor: str, stale_after: float = 10.0) -> ReplayOperation:
        """Take up a cancelled, interrupted or paused operation again (status running again).
        OperationBusy if it is running in a process that showed life within `stale_after`
        seconds; a finished one comes back unchanged. Resuming one its canary stopped waives
        the canary (the operator has seen why); the brake counts outcomes afresh from now."""
        with self._store.transaction():
            found = self.operation(operation_id)
            if found.status == "finished":
                return found
            at_us = now_us()
            if found.status == "running" and at_us - to_us(found.updated_at) < stale_after * 1_000_000:
                raise OperationBusy(
                    f"replay {operation_id} is running in another process (last seen"
                    f" {found.updated_at.isoformat(timespec='seconds')}): cancel it first, or wait"
                )
            self._store.execute(
                "UPDATE dead_letter_replays SET status = 'running', cancel_requested = 0, updated_at_us = ?,"
                " pause_reason = NULL, brake_from_us = ?, canary_result = CASE WHEN canary_result IN"
                " ('failed', 'timed out') THEN 'waived' ELSE canary_result END WHERE id = ?",
                (at_us, at_us, operation_id),
            )
        return self.operation(operation_id)

    def request_cancel(self, operation_id: str, *, actor: str, stale_after: float = 10.0) -> ReplayOperation:
        """Ask a running replay to stop (from any process): it stops after the letter in
        hand, releases its claims and ends `cancelled`. One that no process has run within
        `stale_after` seconds ends `cancelled` at once. Audited."""
        at_us = now_us()
        with self._store.transaction():
            found = self.operation(operation_id)
            if found.status == "paused":  # nothing runs it: it ends cancelled at once
                self._store.execute(
                    "UPDATE dead_letter_replays SET status = 'cancelled', updated_at_us = ? WHERE id = ?",
                    (at_us, operation_id),
                )
                self._trail.audit_row(
                    "cancel", actor, operation_id, found.selection.describe(), _counts(found), "cancelled"
                )
                return self.operation(operation_id)
            if found.status != "running":
                return found
            self._store.execute(
                "UPDATE dead_letter_replays SET cancel_requested = 1 WHERE id = ?", (operation_id,)
            )
            if at_us - to_us(found.updated_at) >= stale_after * 1_000_000:
                self._store.execute(
                    "UPDATE dead_letter_replays SET status = 'cancelled', updated_at_us = ? WHERE id = ?",
                    (at_us, operation_id),
                )
            self._trail.audit_row(
                "cancel", actor, operation_id, found.selection.describe(), _counts(found), "requested"
            )
        return self.operation(operation_id)

    def claim(self, operation_id: str, *, limit: int, lease: float = 60.0) -> list[Claimed]:
        """Claim up to `limit` letters of the operation's selection that are still new, not
        claimed by anyone else (or whose claim's lease ran out) and not yet tried by this
        operation; in arrival order. Also the operation's heartbeat."""
        at_us = now_us()
        with self._store.transaction():
            found = self.operation(operation_id)
            sql, params = where(found.selection, self._backend)
            claimed = self._store.execute(
                "UPDATE dead_letters SET claimed_by = ?, claimed_until_us = ?,"
                " fate_operation_id = CASE WHEN fate IS NULL THEN ? ELSE fate_operation_id END WHERE id IN ("
                f" SELECT id FROM dead_letters WHERE {sql} AND status = 'new'"
                " AND (claimed_by IS NULL OR claimed_by = ? OR claimed_until_us < ?)"
                " AND NOT EXISTS (SELECT 1 FROM dead_letter_history AS h"
                " WHERE h.operation_id = ? AND h.letter_id = dead_letters.id)"
                f" ORDER BY id LIMIT ?{self._backend.skip_locked}) RETURNING id",
                (
                    operation_id,
                    at_us + int(lease * 1_000_000),
                    operation_id,  # whose copy's fate the letter waits for (worker/dead_letters/fates.py)
                    *params,
                    operation_id,
                    at_us,
                    operation_id,
                    limit,
                ),
            ).fetchall()
            self._store.execute(
                "UPDATE dead_letter_replays SET updated_at_us = ? WHERE id = ?", (at_us, operation_id)
            )
            ids = sorted(int(row[0]) for row in claimed)
            if not ids:
                return []
            one_of, more = self._backend.any_of("bigint", ids)
            rows = self._store.execute(
                f"SELECT {FULL_COLUMNS} FROM dead_letters WHERE id {one_of} ORDER BY id", more
            ).fetchall()
        return [Claimed(stored(row, []), operation_id) for row in rows]

    def settle(self, claimed: Claimed, *, outcome: HistoryEntry) -> None:
        """Record what the replay did with one claimed letter and release it: `replayed`
        (the letter becomes replayed), `replay_failed` or `replay_skipped` (it stays new).
        Counts toward the operation's progress."""
        self.settle_all([(claimed, outcome)])

    def settle_all(self, outcomes: Sequence[tuple[Claimed, HistoryEntry]]) -> None:
        """`settle` for several letters, in one transaction."""
        if not outcomes:
            return
        with self._store.transaction():
            for claimed, outcome in outcomes:
                self._settle_one(claimed, outcome)

    def _settle_one(self, claimed: Claimed, outcome: HistoryEntry) -> None:
        counter = _COUNTERS[outcome.kind]
        letter_id = claimed.letter.summary.id
        at_us = now_us()
        if outcome.kind == "replayed":
            self._store.execute(
                "UPDATE dead_letters SET status = 'replayed', resolved_at_us = ?, claimed_by = NULL,"
                " claimed_until_us = NULL WHERE id = ?",
                (at_us, letter_id),
            )
        else:
            self._store.execute(
                "UPDATE dead_letters SET claimed_by = NULL, claimed_until_us = NULL"
                " WHERE id = ? AND claimed_by = ?",
                (letter_id, claimed.operation_id),
            )
        self._trail.add_history([letter_id], replace(outcome, operation_id=claimed.operation_id), at_us)
        self._store.execute(
            f"UPDATE dead_letter_replays SET {counter} = {counter} + 1, updated_at_us = ? WHERE id = ?",
            (at_us, claimed.operation_id),
        )

    def release(self, claimed: Sequence[Claimed]) -> None:
        """Give claimed letters back untried (a cancel, Ctrl-C)."""
        if not claimed:
            return
        with self._store.transaction():
            for held in claimed:
                self._store.execute(
                    "UPDATE dead_letters SET claimed_by = NULL, claimed_until_us = NULL"
                    " WHERE id = ? AND claimed_by = ?",
                    (held.letter.summary.id, held.operation_id),
                )

    def finish(self, operation_id: str, *, actor: str, cancelled: bool = False) -> ReplayOperation:
        """End the operation (finished or cancelled) and write its audit entry."""
        status = "cancelled" if cancelled else "finished"
        with self._store.transaction():
            self._store.execute(
                "UPDATE dead_letter_replays SET status = ?, updated_at_us = ? WHERE id = ?",
                (status, now_us(), operation_id),
            )
            found = self.operation(operation_id)
            result = status if not found.failed else f"{status} with failures"
            self._trail.audit_row(
                "replay", actor, operation_id, found.selection.describe(), _counts(found), result
            )
        return found

    def pause(
        self, operation_id: str, reason: str, *, actor: str, canary_result: str | None = None
    ) -> ReplayOperation:
        """Stop the operation until someone resumes it (its canary failed, or its brake
        held), saying why; audited. `canary_result` records the canary's verdict."""
        with self._store.transaction():
            self._store.execute(
                "UPDATE dead_letter_replays SET status = 'paused', pause_reason = ?, updated_at_us = ?,"
                " canary_result = coalesce(?, canary_result) WHERE id = ?",
                (clean(reason), now_us(), canary_result, operation_id),
            )
            found = self.operation(operation_id)
            self._trail.audit_row(
                "pause", actor, operation_id, found.selection.describe(), _counts(found), f"paused: {reason}"
            )
        return found

    def canary_passed(self, operation_id: str) -> None:
        """The canary's letters all resolved: the rest may go."""
        with self._store.transaction():
            self._store.execute(
                "UPDATE dead_letter_replays SET canary_result = 'passed' WHERE id = ?", (operation_id,)
            )

    def brake_from_us(self, operation_id: str) -> int:
        """When the brake's window starts: outcomes before the operation's last resume do
        not count."""
        row = self._store.execute(
            "SELECT brake_from_us FROM dead_letter_replays WHERE id = ?", (operation_id,)
        ).fetchone()
        return 0 if row is None else int(row[0])


def _counts(found: ReplayOperation) -> dict[str, int]:
    return {
        "total": found.total,
        "replayed": found.replayed,
        "skipped": found.skipped,
        "failed": found.failed,
        "resolved": found.resolved,
        "failed_again": found.failed_again,
    }
