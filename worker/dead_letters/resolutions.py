"""Dead letters acted on by an operator, and pruned: notes, archive, purge (of a selection, or of
exactly the letters shown), each with its history entries and one audit row in the same
transaction; and the retention rounds' deletion of letters resolved long enough."""

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Literal

from worker.dead_letters.model import (
    HistoryEntry,
    LetterFilter,
    Status,
)
from worker.dead_letters.sql import (
    at,
    now_us,
    to_us,
    where,
)
from worker.dead_letters.trail import Trail
from worker.store.sql import SqlStore

_CHUNK = 500  # letter ids per statement, well under SQLite's limit on parameters


class Resolutions:
    """Notes, archiving, purging and pruning over one store's letters."""

    def __init__(self, store: SqlStore, trail: Trail) -> None:
        self._store = store
        self._backend = store._backend
        self._trail = trail

    def add_note(
        self, letter_ids: int | Sequence[int], text: str, *, actor: str, operation_id: str | None = None
    ) -> HistoryEntry:
        """Add a triage note to each letter, in one transaction with one audit row; KeyError
        if one of them does not exist (then none is noted)."""
        ids = [letter_ids] if isinstance(letter_ids, int) else list(letter_ids)
        entry = HistoryEntry(at=at(now_us()), kind="note", actor=actor, text=text)
        with self._store.transaction():
            for letter_id in ids:
                found = self._store.execute("SELECT 1 FROM dead_letters WHERE id = ?", (letter_id,))
                if found.fetchone() is None:
                    raise KeyError(f"no dead letter #{letter_id}")
            self._trail.add_history(ids, entry, to_us(entry.at))
            described = ", ".join(f"#{letter_id}" for letter_id in ids)
            self._trail.audit_row("note", actor, operation_id, described, {"noted": len(ids)}, "added")
        return entry

    def archive(self, selection: LetterFilter, *, actor: str, operation_id: str | None = None) -> int:
        """Mark the matching unresolved letters archived; how many. Audited."""
        return self._resolve(selection, "archived", ("new",), actor, operation_id)

    def purge(self, selection: LetterFilter, *, actor: str, operation_id: str | None = None) -> int:
        """Mark the matching new or archived letters purged (their rows go at the first
        retention round past the retention period, their history with them); how many.
        Audited."""
        return self._resolve(selection, "purged", ("new", "archived"), actor, operation_id)

    def purge_shown(
        self,
        letter_ids: Sequence[int],
        *,
        statuses: frozenset[Status],
        actor: str,
        operation_id: str,
        described: str,
    ) -> int:
        """Purge exactly these letters (what an operator was shown, not what arrived since),
        those still new or archived in `statuses`, a chunk of ids at a time, in one transaction
        with one audit row that names the selection as `described`; how many."""
        return self._resolve(
            LetterFilter(statuses=statuses),
            "purged",
            ("new", "archived"),
            actor,
            operation_id,
            letter_ids,
            described,
        )

    def _resolve(
        self,
        selection: LetterFilter,
        status: Literal["archived", "purged"],
        from_statuses: tuple[Status, ...],
        actor: str,
        operation_id: str | None,
        letter_ids: Sequence[int] | None = None,
        described: str | None = None,
    ) -> int:
        allowed = frozenset(from_statuses) & selection.statuses
        verb = "archive" if status == "archived" else "purge"
        chunks = [selection] if letter_ids is None else _chunks(selection, letter_ids)
        at_us = now_us()
        with self._store.transaction():
            ids: list[int] = []
            for chosen in chunks if allowed else []:
                sql, params = where(replace(chosen, statuses=allowed), self._backend)
                ids += [
                    int(row[0])
                    for row in self._store.execute(
                        "UPDATE dead_letters SET status = ?, resolved_at_us = ? WHERE id IN ("
                        f" SELECT id FROM dead_letters WHERE {sql}"
                        " AND (claimed_by IS NULL OR claimed_until_us < ?)) RETURNING id",
                        [status, at_us, *params, at_us],
                    ).fetchall()
                ]
            ids.sort()
            if ids:
                self._trail.add_history(ids, HistoryEntry(at=at(at_us), kind=status, actor=actor), at_us)
            described = selection.describe() if described is None else described
            self._trail.audit_row(verb, actor, operation_id, described, {status: len(ids)}, "completed")
        return len(ids)

    def prune_resolved(self, *, resolved_before: datetime, limit: int) -> int:
        """Delete at most `limit` letters resolved before the time, with their history and
        their edits' before and after; how many. Unresolved letters are never pruned."""
        with self._store.transaction():
            ids = [
                int(row[0])
                for row in self._store.execute(
                    "SELECT id FROM dead_letters WHERE resolved_at_us < ? ORDER BY resolved_at_us LIMIT ?",
                    (to_us(resolved_before), limit),
                ).fetchall()
            ]
            if not ids:
                return 0
            one_of, params = self._backend.any_of("bigint", ids)
            self._store.execute(f"DELETE FROM dead_letter_history WHERE letter_id {one_of}", params)
            self._store.execute(f"DELETE FROM dead_letter_edits WHERE letter_id {one_of}", params)
            self._store.execute(f"DELETE FROM dead_letters WHERE id {one_of}", params)
        return len(ids)


def _chunks(selection: LetterFilter, letter_ids: Sequence[int]) -> list[LetterFilter]:
    """The selection narrowed to the ids, a bounded number of ids each (SQLite's parameters)."""
    ordered = sorted(set(letter_ids))
    return [
        replace(selection, letter_ids=frozenset(ordered[start : start + _CHUNK]))
        for start in range(0, len(ordered), _CHUNK)
    ]
