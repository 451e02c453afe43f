"""What happened to dead letters, as the records keep it: one history entry per letter acted
on, one audit row per action. Both are written inside the caller's transaction, so a change and
its record commit together."""

import json
from collections.abc import Sequence

from worker.dead_letters.model import AuditEntry, HistoryEntry
from worker.dead_letters.sql import (
    AUDIT_COLUMNS,
    HISTORY_COLUMNS,
    audit_entry,
    clean,
    history_entry,
    maybe,
    now_us,
)
from worker.store.sql import SqlStore


class Trail:
    """The history and the audit of one store's dead letters."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store

    def add_history(self, letter_ids: Sequence[int], entry: HistoryEntry, at_us: int) -> None:
        """One history entry per letter, inside the caller's transaction."""
        to_exchange, to_routing_key = entry.to if entry.to is not None else (None, None)
        self._store.execute_many(
            "INSERT INTO dead_letter_history (letter_id, at_us, kind, actor, operation_id, to_exchange,"
            " to_routing_key, outcome, message_id, text, linked_letter_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    letter_id,
                    at_us,
                    entry.kind,
                    clean(entry.actor),
                    entry.operation_id,
                    maybe(to_exchange),
                    maybe(to_routing_key),
                    maybe(entry.outcome),
                    maybe(entry.message_id),
                    maybe(entry.text),
                    entry.linked_letter,
                )
                for letter_id in letter_ids
            ],
        )

    def history(self, letter_id: int) -> list[HistoryEntry]:
        """What happened to a letter, oldest first; [] for an unknown id."""
        rows = self._store.execute(
            f"SELECT {HISTORY_COLUMNS} FROM dead_letter_history WHERE letter_id = ? ORDER BY seq",
            (letter_id,),
        ).fetchall()
        return [history_entry(row) for row in rows]

    def audit_row(
        self,
        action: str,
        actor: str,
        operation_id: str | None,
        selection: str,
        counts: dict[str, int],
        result: str,
    ) -> None:
        """One audit row, inside the caller's transaction."""
        self._store.execute(
            "INSERT INTO dead_letter_audit (at_us, actor, action, operation_id, selection, counts, result)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                now_us(),
                clean(actor),
                action,
                operation_id,
                clean(selection),
                json.dumps(counts),
                clean(result),
            ),
        )

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
        with self._store.transaction():
            self.audit_row(action, actor, operation_id, selection, counts, result)
        return self.audit_log(limit=1)[0]

    def audit_log(self, *, limit: int = 100, operation_id: str | None = None) -> list[AuditEntry]:
        """The latest audit entries, newest first."""
        condition, params = ("WHERE operation_id = ?", [operation_id]) if operation_id else ("", [])
        rows = self._store.execute(
            f"SELECT {AUDIT_COLUMNS} FROM dead_letter_audit {condition} ORDER BY seq DESC LIMIT ?",
            [*params, limit],
        ).fetchall()
        return [audit_entry(row) for row in rows]
