"""What became of each replayed letter: the loop a replay closes.

A replay's copy carries the letter's id and the operation's (`x-replay-of-letter`,
`x-replay-operation`, set by `DeadLetter.replay_properties`). Two places learn its fate:

- the worker's batch, when it handles the copy (`ReplayFates.handled`, inside the batch's own
  transaction): the letter is `resolved`, with the notification it caused or "handled, no
  notification needed";
- the drain, when the copy comes back as a new dead letter (`ReplayFates.came_back`): the old
  letter `failed_again`, its history naming the new letter, and the new letter naming the old.

A copy only re-queued for a retry has no fate yet. A letter has one fate, the first: a copy
published twice (a replay killed between its publish and its commit) changes nothing the second
time. A header is untrusted, so a fate is only written for a letter the operation named really
claimed (a claim names the operation in `fate_operation_id`, kept after the claim ends, so the
check holds while the replay's own commit of the letter is under way) or has tried (an entry of
that operation in its history).
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.dead_letters.model import HistoryEntry, NewLetter
from worker.dead_letters.sql import at, clean, now_us
from worker.dead_letters.trail import Trail
from worker.dead_letters.values import count, text
from worker.messaging import REPLAY_OF_LETTER, REPLAY_OPERATION
from worker.store.sql import SqlStore

WORKER = "worker"  # the actor of a fate: the worker found it, no operator
NOTHING_NEEDED = "handled, no notification needed"

# The letter the operation really holds or has tried (a forged header changes nothing).
_OURS = (
    "(fate_operation_id = ? OR EXISTS (SELECT 1 FROM dead_letter_history AS h"
    " WHERE h.letter_id = dead_letters.id AND h.operation_id = ?))"
)


@dataclass(frozen=True, slots=True)
class ReplayOf:
    """Which letter a copy was a replay of, and under which operation."""

    letter_id: int
    operation_id: str


def replay_of(headers: Mapping[str, Any]) -> ReplayOf | None:
    """The letter and operation a message's headers name; None for a message that is no
    replay's copy, or whose headers do not read as a letter id and an operation id."""
    if REPLAY_OF_LETTER not in headers:
        return None
    letter_id, operation_id = count(headers.get(REPLAY_OF_LETTER)), text(headers.get(REPLAY_OPERATION))
    if letter_id is None or operation_id is None:
        return None
    return ReplayOf(letter_id, operation_id[:64])


def resolution(notification_id: str | None) -> str:
    """A resolved letter's outcome, as its history says it."""
    return NOTHING_NEEDED if notification_id is None else f"notification {notification_id} requested"


@dataclass(frozen=True, slots=True)
class Window:
    """The latest outcomes of an operation's letters, and how many of them failed again."""

    outcomes: int
    failed_again: int


@dataclass(frozen=True, slots=True)
class CanaryLetter:
    """A letter an operation has replayed, with its fate so far (None: still pending)."""

    letter_id: int
    event_id: str | None
    fate: str | None
    detail: str | None
    next_letter: int | None


class ReplayFates:
    """Fates of replayed letters over one store's records."""

    def __init__(self, store: SqlStore) -> None:
        self._store = store
        self._trail = Trail(store)

    def handled(self, copies: Iterable[tuple[Mapping[str, Any], str | None]], at_us: int) -> int:
        """Inside the caller's transaction (the worker's batch): each handled message (its
        headers, the notification it caused) that is a replay's copy resolves its letter; how
        many letters this resolved. Messages that are no copy cost a look at their headers."""
        found = sorted(
            (of.letter_id, of.operation_id, notification_id)
            for headers, notification_id in copies
            if (of := replay_of(headers)) is not None
        )
        resolved = 0
        for letter_id, operation_id, notification_id in found:
            detail = resolution(notification_id)
            if self._fate(letter_id, operation_id, "resolved", detail, None, at_us):
                entry = HistoryEntry(
                    at=at(at_us),
                    kind="resolved",
                    actor=WORKER,
                    operation_id=operation_id,
                    outcome=detail,
                    message_id=notification_id,
                )
                self._trail.add_history([letter_id], entry, at_us)
                resolved += 1
        return resolved

    def came_back(self, letters: Sequence[NewLetter]) -> int:
        """After the drain recorded them, in a transaction of its own: each new letter that is a
        replay's copy links the letter it came from, which failed again; how many links this
        made. Idempotent, so letters drained again after a kill before their ack complete it."""
        copies = [(letter, of) for letter in letters if (of := replay_of(letter.headers)) is not None]
        if not copies:
            return 0
        linked = 0
        at_us = now_us()
        with self._store.transaction():
            for letter, of in sorted(copies, key=lambda pair: pair[1].letter_id):
                row = self._store.execute(
                    "SELECT id FROM dead_letters WHERE letter_key = ?", (letter.key,)
                ).fetchone()
                if row is None or int(row[0]) == of.letter_id:
                    continue
                linked += self._link(int(row[0]), letter, of, at_us)
        return linked

    def _link(self, new_id: int, letter: NewLetter, of: ReplayOf, at_us: int) -> int:
        ours = self._store.execute(
            f"SELECT 1 FROM dead_letters WHERE id = ? AND {_OURS}",
            (of.letter_id, of.operation_id, of.operation_id),
        ).fetchone()
        if ours is None:
            return 0
        why = clean(f"{letter.reason}: {letter.detail}")[:500]
        if self._fate(of.letter_id, of.operation_id, "failed_again", why, new_id, at_us):
            entry = HistoryEntry(
                at=at(at_us),
                kind="failed_again",
                actor=WORKER,
                operation_id=of.operation_id,
                outcome=f"failed again as #{new_id}: {why}",
                linked_letter=new_id,
            )
            self._trail.add_history([of.letter_id], entry, at_us)
        came = self._store.execute(
            "UPDATE dead_letters SET previous_letter_id = ? WHERE id = ? AND previous_letter_id IS NULL"
            " RETURNING id",
            (of.letter_id, new_id),
        ).fetchone()
        if came is None:
            return 0
        entry = HistoryEntry(
            at=at(at_us),
            kind="replay_of",
            actor=WORKER,
            operation_id=of.operation_id,
            outcome=f"a replay of #{of.letter_id} that failed again",
            linked_letter=of.letter_id,
        )
        self._trail.add_history([new_id], entry, at_us)
        return 1

    def _fate(
        self, letter_id: int, operation_id: str, kind: str, detail: str, next_letter: int | None, at_us: int
    ) -> bool:
        """Write the letter's fate unless it has one; whether this wrote it."""
        row = self._store.execute(
            "UPDATE dead_letters SET fate = ?, fate_at_us = ?, fate_operation_id = ?, fate_detail = ?,"
            f" next_letter_id = ? WHERE id = ? AND fate IS NULL AND {_OURS} RETURNING id",
            (kind, at_us, operation_id, detail, next_letter, letter_id, operation_id, operation_id),
        ).fetchone()
        return row is not None

    def window(self, operation_id: str, *, since_us: int, size: int) -> Window:
        """The operation's latest `size` outcomes recorded since `since_us` (its last start)."""
        rows = self._store.execute(
            "SELECT fate FROM dead_letters WHERE fate_operation_id = ? AND fate_at_us >= ?"
            " ORDER BY fate_at_us DESC LIMIT ?",
            (operation_id, since_us, size),
        ).fetchall()
        return Window(len(rows), sum(row[0] == "failed_again" for row in rows))

    def replayed(self, operation_id: str) -> list[CanaryLetter]:
        """The letters the operation has published, in order, with their fates so far."""
        rows = self._store.execute(
            "SELECT d.id, d.event_id, CASE WHEN d.fate_operation_id = ? THEN d.fate END,"
            " d.fate_detail, d.next_letter_id FROM dead_letters AS d WHERE EXISTS (SELECT 1 FROM"
            " dead_letter_history AS h WHERE h.letter_id = d.id AND h.operation_id = ?"
            " AND h.kind = 'replayed') ORDER BY d.id",
            (operation_id, operation_id),
        ).fetchall()
        return [
            CanaryLetter(int(row[0]), row[1], row[2], row[3], None if row[4] is None else int(row[4]))
            for row in rows
        ]

    def fated(self, operation_id: str, kind: str, *, limit: int) -> list[CanaryLetter]:
        """The operation's latest `limit` letters of one fate, newest first."""
        rows = self._store.execute(
            "SELECT id, event_id, fate, fate_detail, next_letter_id FROM dead_letters"
            " WHERE fate_operation_id = ? AND fate = ? ORDER BY fate_at_us DESC, id LIMIT ?",
            (operation_id, kind, limit),
        ).fetchall()
        return [
            CanaryLetter(int(row[0]), row[1], row[2], row[3], None if row[4] is None else int(row[4]))
            for row in rows
        ]
