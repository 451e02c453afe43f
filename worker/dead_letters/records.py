"""The dead-letter records: letters as rows in the worker's store, SQLite and PostgreSQL alike.

`DeadLetterRecords(store)` is what the worker's drain, `renewals dlq` and the console use. It
is made of one recorder per job over the same store, composed here: `Letters` (arriving and
read), `Resolutions` (notes, archive, purge, pruning), `ReplayBook` (replay operations, their
claims and leases), `ReplayFates` (what became of replayed letters), `EditBook` (edited
letters: held, settled, their before and after) and the `Trail` they write to (history and
audit). Each call below is one
part's. Every method is one short transaction of its own; none holds a lock between calls. Two
processes may use the same store at once: inserts are idempotent, replays claim each letter
before publishing it (on PostgreSQL with `FOR UPDATE SKIP LOCKED`; on SQLite the write lock
serialises), and cancelling a replay is a flag on its row that the running replay reads.
"""

from collections.abc import Iterator, Sequence
from datetime import datetime

from worker.dead_letters.edits import EditBook, LetterMoved
from worker.dead_letters.fates import CanaryLetter, ReplayFates, Window
from worker.dead_letters.letters import UNRESOLVED, Letters
from worker.dead_letters.model import (
    AuditEntry,
    Claimed,
    EditRecord,
    FateKind,
    Group,
    HistoryEntry,
    LetterFilter,
    NewLetter,
    Page,
    ReplayOperation,
    Status,
    StoredLetter,
)
from worker.dead_letters.replay_book import OperationBusy, Outline, ReplayBook, UnknownOperation
from worker.dead_letters.resolutions import Resolutions
from worker.dead_letters.schedule import RUNNER_LEASE, Schedule
from worker.dead_letters.trail import Trail
from worker.store.sql import SqlStore

__all__ = ["UNRESOLVED", "DeadLetterRecords", "LetterMoved", "OperationBusy", "UnknownOperation"]


class DeadLetterRecords:
    """The dead letters of one store. Build it over an open (migrated) `SqlStore`."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._trail = Trail(store)
        self._letters = Letters(store, self._trail)
        self._resolutions = Resolutions(store, self._trail)
        self._replays = ReplayBook(store, self._trail)
        self._schedule = Schedule(store, self._trail)
        self._edits = EditBook(store, self._trail)
        self._fates = ReplayFates(store)

    # --- arriving and reading: Letters, Trail ---------------------------------------------------

    def insert(self, letters: Sequence[NewLetter], *, at: datetime | None = None) -> int:
        return self._letters.insert(letters, at=at)

    def page(
        self,
        selection: LetterFilter = UNRESOLVED,
        *,
        after: int | None = None,
        limit: int = 50,
        newest_first: bool = False,
    ) -> Page:
        return self._letters.page(selection, after=after, limit=limit, newest_first=newest_first)

    def count(self, selection: LetterFilter = UNRESOLVED) -> int:
        return self._letters.count(selection)

    def get(self, letter_id: int) -> StoredLetter | None:
        return self._letters.get(letter_id)

    def find(self, event_id: str) -> list[StoredLetter]:
        return self._letters.find(event_id)

    def letters(self, selection: LetterFilter, *, batch: int = 500) -> Iterator[StoredLetter]:
        return self._letters.letters(selection, batch=batch)

    def groups(
        self,
        selection: LetterFilter = UNRESOLVED,
        *,
        hours: int = 24,
        now: datetime | None = None,
        limit: int = 100,
    ) -> list[Group]:
        return self._letters.groups(selection, hours=hours, now=now, limit=limit)

    def history(self, letter_id: int) -> list[HistoryEntry]:
        return self._trail.history(letter_id)

    # --- acting and pruning: Resolutions --------------------------------------------------------

    def add_note(
        self, letter_ids: int | Sequence[int], text: str, *, actor: str, operation_id: str | None = None
    ) -> HistoryEntry:
        return self._resolutions.add_note(letter_ids, text, actor=actor, operation_id=operation_id)

    def archive(self, selection: LetterFilter, *, actor: str, operation_id: str | None = None) -> int:
        return self._resolutions.archive(selection, actor=actor, operation_id=operation_id)

    def purge(self, selection: LetterFilter, *, actor: str, operation_id: str | None = None) -> int:
        return self._resolutions.purge(selection, actor=actor, operation_id=operation_id)

    def purge_shown(
        self,
        letter_ids: Sequence[int],
        *,
        statuses: frozenset[Status],
        actor: str,
        operation_id: str,
        described: str,
    ) -> int:
        return self._resolutions.purge_shown(
            letter_ids, statuses=statuses, actor=actor, operation_id=operation_id, described=described
        )

    def prune_resolved(self, *, resolved_before: datetime, limit: int) -> int:
        return self._resolutions.prune_resolved(resolved_before=resolved_before, limit=limit)

    # --- the audit: Trail -----------------------------------------------------------------------

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
        return self._trail.audit(
            action, actor=actor, selection=selection, counts=counts, result=result, operation_id=operation_id
        )

    def audit_log(self, *, limit: int = 100, operation_id: str | None = None) -> list[AuditEntry]:
        return self._trail.audit_log(limit=limit, operation_id=operation_id)

    # --- replays: ReplayBook --------------------------------------------------------------------

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
        return self._replays.start_replay(
            selection,
            actor=actor,
            rate=rate,
            to_original=to_original,
            force=force,
            max_replays=max_replays,
            dry_run=dry_run,
            operation_id=operation_id,
            not_before_us=not_before_us,
            canary=canary,
        )

    def outlines(self, selection: LetterFilter, *, limit: int) -> list[Outline]:
        return self._replays.outlines(selection, limit=limit)

    def operation(self, operation_id: str) -> ReplayOperation:
        return self._replays.operation(operation_id)

    def operations(self, *, limit: int = 20) -> list[ReplayOperation]:
        return self._replays.operations(limit=limit)

    def resume(self, operation_id: str, *, actor: str, stale_after: float = 10.0) -> ReplayOperation:
        return self._replays.resume(operation_id, actor=actor, stale_after=stale_after)

    def request_cancel(self, operation_id: str, *, actor: str, stale_after: float = 10.0) -> ReplayOperation:
        return self._replays.request_cancel(operation_id, actor=actor, stale_after=stale_after)

    def claim(self, operation_id: str, *, limit: int, lease: float = 60.0) -> list[Claimed]:
        return self._replays.claim(operation_id, limit=limit, lease=lease)

    def settle(self, claimed: Claimed, *, outcome: HistoryEntry) -> None:
        self._replays.settle(claimed, outcome=outcome)

    def settle_all(self, outcomes: Sequence[tuple[Claimed, HistoryEntry]]) -> None:
        self._replays.settle_all(outcomes)

    def release(self, claimed: Sequence[Claimed]) -> None:
        self._replays.release(claimed)

    def finish(self, operation_id: str, *, actor: str, cancelled: bool = False) -> ReplayOperation:
        return self._replays.finish(operation_id, actor=actor, cancelled=cancelled)

    # --- scheduled replays: Schedule ------------------------------------------------------------

    def any_due(self) -> bool:
        return self._schedule.any_due()

    def claim_due(self, runner: str, *, lease: float = RUNNER_LEASE) -> ReplayOperation | None:
        return self._schedule.claim_due(runner, lease=lease)

    def renew_runner(self, operation_id: str, runner: str, *, lease: float) -> bool:
        return self._schedule.renew(operation_id, runner, lease=lease)

    def cancel_scheduled(self, operation_id: str, *, actor: str) -> ReplayOperation | None:
        return self._schedule.cancel(operation_id, actor=actor)

    # --- edits: EditBook ------------------------------------------------------------------------

    def hold_for_edit(self, letter_id: int, operation_id: str, *, lease: float) -> StoredLetter:
        return self._edits.hold(letter_id, operation_id, lease=lease)

    def settle_edit(self, record: EditRecord, entry: HistoryEntry, *, selection: str, result: str) -> None:
        self._edits.settle(record, entry, selection=selection, result=result)

    def release_edit(
        self, letter_id: int, operation_id: str, *, actor: str, selection: str, result: str
    ) -> None:
        self._edits.release(letter_id, operation_id, actor=actor, selection=selection, result=result)

    def edits(self, letter_id: int) -> list[EditRecord]:
        return self._edits.edits(letter_id)

    def edit_record(self, operation_id: str) -> EditRecord | None:
        return self._edits.edit(operation_id)

    def pause(
        self, operation_id: str, reason: str, *, actor: str, canary_result: str | None = None
    ) -> ReplayOperation:
        return self._replays.pause(operation_id, reason, actor=actor, canary_result=canary_result)

    def canary_passed(self, operation_id: str) -> None:
        self._replays.canary_passed(operation_id)

    # --- fates: ReplayFates ---------------------------------------------------------------------

    def came_back(self, letters: Sequence[NewLetter]) -> int:
        return self._fates.came_back(letters)

    def fate_window(self, operation_id: str, *, since_us: int, size: int) -> Window:
        return self._fates.window(operation_id, since_us=since_us, size=size)

    def replayed_letters(self, operation_id: str) -> list[CanaryLetter]:
        return self._fates.replayed(operation_id)

    def brake_from_us(self, operation_id: str) -> int:
        return self._replays.brake_from_us(operation_id)

    def fated(self, operation_id: str, kind: FateKind, *, limit: int = 20) -> list[CanaryLetter]:
        return self._fates.fated(operation_id, kind, limit=limit)
