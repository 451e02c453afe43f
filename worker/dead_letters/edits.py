"""Edited letters as the records keep them: the hold that keeps a letter still while its edited
copy is published, and what a confirmed edit leaves behind.

An edit holds its letter the way a replay claims one (`claimed_by` names the edit's operation,
with a lease), and only while it is `new` and nobody else holds it: a replay claiming at the
same moment skips it, and archive and purge leave held letters alone. When the broker confirms
the copy, one transaction makes the letter `replayed`, writes its `edited` history entry, the
edit's before and after (`dead_letter_edits`) and the audit row. When it does not, the hold is
released and the audit says why; the letter is as it was.
"""

from collections.abc import Sequence
from typing import Any

from worker.dead_letters.model import EditRecord, HistoryEntry, StoredLetter
from worker.dead_letters.sql import FULL_COLUMNS, at, clean, now_us, stored
from worker.dead_letters.trail import Trail
from worker.store import amqp_json
from worker.store.model import StoreError
from worker.store.sql import SqlStore

EDIT_COLUMNS = (
    "letter_id, operation_id, at_us, actor, body_before, body_after, headers_before, headers_after,"
    " message_id, to_exchange, to_routing_key"
)


class LetterMoved(StoreError):
    """The letter is no longer new, or someone else holds it: the line says who did what."""


class EditBook:
    """Holds, settles and releases edited letters over one store, and reads their edits back."""

    def __init__(self, store: SqlStore, trail: Trail) -> None:
        self._store = store
        self._trail = trail

    def hold(self, letter_id: int, operation_id: str, *, lease: float) -> StoredLetter:
        """Hold the letter for the edit `operation_id` while it is new and nobody else holds
        it, and hand it out as it is now; LetterMoved, saying who did what, otherwise."""
        at_us = now_us()
        with self._store.transaction():
            held = self._store.execute(
                # The hold names the edit for the copy's fate too (worker/dead_letters/fates.py),
                # as a replay's claim does: a worker may handle the copy before settle commits.
                "UPDATE dead_letters SET claimed_by = ?, claimed_until_us = ?,"
                " fate_operation_id = CASE WHEN fate IS NULL THEN ? ELSE fate_operation_id END"
                " WHERE id = ? AND status = 'new' AND (claimed_by IS NULL OR claimed_until_us < ?)"
                " RETURNING id",
                (operation_id, at_us + int(lease * 1_000_000), operation_id, letter_id, at_us),
            ).fetchone()
            if held is None:
                raise LetterMoved(self._moved(letter_id, at_us))
            row = self._store.execute(
                f"SELECT {FULL_COLUMNS} FROM dead_letters WHERE id = ?", (letter_id,)
            ).fetchone()
        return stored(row, [])

    def _moved(self, letter_id: int, at_us: int) -> str:
        """Why the letter cannot be held: what became of it, by whom and when (the latest entry
        of its history that changed it), or who holds it now."""
        found = self._store.execute(
            "SELECT status, claimed_by, claimed_until_us FROM dead_letters WHERE id = ?", (letter_id,)
        ).fetchone()
        if found is None:
            return f"dead letter #{letter_id} is gone (pruned after it was resolved)"
        status, holder, until = found
        if status == "new":
            if holder is not None and until is not None and until >= at_us:
                return (
                    f"dead letter #{letter_id} is being replayed or edited right now (operation {holder});"
                    " try again when it is done"
                )
            return f"dead letter #{letter_id} changed as it was held; try again"
        last = self._store.execute(
            "SELECT at_us, kind, actor, operation_id FROM dead_letter_history WHERE letter_id = ?"
            " AND kind IN ('replayed', 'archived', 'purged', 'edited') ORDER BY seq DESC LIMIT 1",
            (letter_id,),
        ).fetchone()
        if last is None:
            return f"dead letter #{letter_id} is {status} now, no longer new: nothing was sent"
        when = at(last[0]).isoformat(timespec="seconds")
        operation = f" (operation {last[3]})" if last[3] else ""
        return (
            f"dead letter #{letter_id} was {last[1]} by {last[2]} at {when}{operation}"
            " since it was opened: nothing was sent"
        )

    def settle(self, record: EditRecord, entry: HistoryEntry, *, selection: str, result: str) -> None:
        """The copy was confirmed: the letter becomes replayed, with its `edited` history entry,
        the edit's before and after, and the audit row, in one transaction."""
        at_us = now_us()
        with self._store.transaction():
            self._store.execute(
                "UPDATE dead_letters SET status = 'replayed', resolved_at_us = ?, claimed_by = NULL,"
                " claimed_until_us = NULL WHERE id = ? AND claimed_by = ?",
                (at_us, record.letter_id, record.operation_id),
            )
            self._trail.add_history([record.letter_id], entry, at_us)
            self._store.execute(
                f"INSERT INTO dead_letter_edits ({EDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.letter_id,
                    record.operation_id,
                    at_us,
                    clean(record.actor),
                    record.body_before,
                    record.body_after,
                    amqp_json.dumps(record.headers_before),
                    amqp_json.dumps(record.headers_after),
                    clean(record.message_id),
                    clean(record.to[0]),
                    clean(record.to[1]),
                ),
            )
            self._trail.audit_row("edit", record.actor, record.operation_id, selection, {"edited": 1}, result)

    def release(self, letter_id: int, operation_id: str, *, actor: str, selection: str, result: str) -> None:
        """The copy was not confirmed: the letter is let go as it was; the audit says why."""
        with self._store.transaction():
            self._store.execute(
                "UPDATE dead_letters SET claimed_by = NULL, claimed_until_us = NULL"
                " WHERE id = ? AND claimed_by = ?",
                (letter_id, operation_id),
            )
            self._trail.audit_row("edit", actor, operation_id, selection, {"edited": 0}, result)

    def edits(self, letter_id: int) -> list[EditRecord]:
        """The letter's confirmed edits, oldest first ([] for none)."""
        rows = self._store.execute(
            f"SELECT {EDIT_COLUMNS} FROM dead_letter_edits WHERE letter_id = ? ORDER BY seq", (letter_id,)
        ).fetchall()
        return [_edit(row) for row in rows]

    def edit(self, operation_id: str) -> EditRecord | None:
        """The edit an operation id names, if it was confirmed."""
        row = self._store.execute(
            f"SELECT {EDIT_COLUMNS} FROM dead_letter_edits WHERE operation_id = ?", (operation_id,)
        ).fetchone()
        return None if row is None else _edit(row)


def _edit(row: Sequence[Any]) -> EditRecord:
    return EditRecord(
        letter_id=int(row[0]),
        operation_id=row[1],
        at=at(row[2]),
        actor=row[3],
        body_before=bytes(row[4]),
        body_after=bytes(row[5]),
        headers_before=amqp_json.loads(row[6]),
        headers_after=amqp_json.loads(row[7]),
        message_id=row[8],
        to=(row[9], row[10]),
    )
