"""Dead letters arriving and read: the drain's idempotent insert, pages, counts, one letter in
full, every letter of a selection, and groups with their hourly trends."""

from collections.abc import Iterator, Sequence
from datetime import datetime

from worker.dead_letters.model import (
    Group,
    LetterFilter,
    NewLetter,
    Page,
    StoredLetter,
    fingerprint,
    normalised_detail,
)
from worker.dead_letters.sql import (
    FULL_COLUMNS,
    SUMMARY_COLUMNS,
    at,
    clean,
    maybe,
    now_us,
    stored,
    summary,
    to_us,
    where,
)
from worker.dead_letters.trail import Trail
from worker.store import amqp_json
from worker.store.sql import SqlStore

UNRESOLVED = LetterFilter()  # every letter nobody has acted on yet
_HOUR_US = 3_600_000_000
_SEARCHED_BODY = 1024  # bytes of the body that the text search looks into


class Letters:
    """The letters of one store, as they arrive and as they are read."""

    def __init__(self, store: SqlStore, trail: Trail) -> None:
        self._store = store
        self._backend = store._backend
        self._trail = trail

    # --- arriving ----------------------------------------------------------------------------

    def insert(self, letters: Sequence[NewLetter], *, at: datetime | None = None) -> int:
        """Record letters drained from the queue, in one transaction; how many were new.

        Idempotent: a letter already recorded (same `NewLetter.key`) is left as it is, so a
        redelivery after a kill between this commit and the ack leaves one row. A failure time
        later than the receipt (`at`, default now) is recorded as the receipt; the header keeps
        what it said.
        """
        received_us = now_us() if at is None else to_us(at)
        fresh = 0
        with self._store.transaction():
            for letter in letters:
                fresh += self._insert_one(letter, received_us)
        return fresh

    def _insert_one(self, letter: NewLetter, received_us: int) -> int:
        group = fingerprint(letter.reason, letter.event_type, letter.detail)
        # A failure time ahead of the receipt is the receipt (as an event's stamp is capped at
        # its handling): a forged future x-failed-at would keep a letter "last hour" for ever.
        failed_us = None if letter.failed_at is None else min(to_us(letter.failed_at), received_us)
        origin = letter.origin or (None, None)
        properties = {name: value for name, value in letter.properties.items() if name != "headers"}
        row = self._store.execute(
            "INSERT INTO dead_letters (letter_key, status, received_at_us, failed_at_us, seen_at_us,"
            " reason, detail, fingerprint, event_id, event_type, message_id, origin_exchange,"
            " origin_routing_key, attempts, replays, trace_parent, search_text, body, body_size,"
            " body_sha256, properties, headers, problem)"
            " VALUES (?, 'new', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (letter_key) DO NOTHING RETURNING id",
            (
                letter.key,
                received_us,
                failed_us,
                received_us if failed_us is None else failed_us,
                clean(letter.reason),
                clean(letter.detail),
                group,
                maybe(letter.event_id),
                maybe(letter.event_type),
                maybe(letter.message_id),
                maybe(origin[0]),
                maybe(origin[1]),
                letter.attempts,
                letter.replays,
                maybe(letter.trace_parent),
                _search_text(letter),
                letter.body,
                letter.body_size if letter.body_size is not None else len(letter.body),
                letter.body_sha256,
                amqp_json.dumps(properties),
                amqp_json.dumps(letter.headers),
                maybe(letter.problem),
            ),
        ).fetchone()
        if row is None:
            return 0
        self._store.execute(
            "INSERT INTO dead_letter_groups (fingerprint, reason, event_type, pattern) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (fingerprint) DO NOTHING",
            (group, clean(letter.reason), maybe(letter.event_type), clean(normalised_detail(letter.detail))),
        )
        return 1

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
        sql, params = where(selection, self._backend)
        if after is not None:
            sql += " AND id < ?" if newest_first else " AND id > ?"
            params.append(after)
        order = "DESC" if newest_first else ""
        rows = self._store.execute(
            f"SELECT {SUMMARY_COLUMNS} FROM dead_letters WHERE {sql} ORDER BY id {order} LIMIT ?",
            [*params, limit + 1],
        ).fetchall()
        letters = [summary(row) for row in rows[:limit]]
        return Page(letters, letters[-1].id if len(rows) > limit else None)

    def count(self, selection: LetterFilter = UNRESOLVED) -> int:
        """How many letters match (the selection's `limit` caps it)."""
        sql, params = where(selection, self._backend)
        return int(
            self._store.execute(f"SELECT count(*) FROM dead_letters WHERE {sql}", params).fetchone()[0]
        )

    def get(self, letter_id: int) -> StoredLetter | None:
        """One letter in full, with its history and notes; None if there is none (or it was
        pruned). Read in one read-only transaction: the letter and its history agree."""
        with self._store.reading():
            row = self._store.execute(
                f"SELECT {FULL_COLUMNS} FROM dead_letters WHERE id = ?", (letter_id,)
            ).fetchone()
            return None if row is None else stored(row, self._trail.history(letter_id))

    def find(self, event_id: str) -> list[StoredLetter]:
        """Every letter of this event id (any status), oldest first, in one read-only transaction."""
        with self._store.reading():
            rows = self._store.execute(
                f"SELECT {FULL_COLUMNS} FROM dead_letters WHERE event_id = ? ORDER BY id", (clean(event_id),)
            ).fetchall()
            return [stored(row, self._trail.history(int(row[0]))) for row in rows]

    def letters(self, selection: LetterFilter, *, batch: int = 500) -> Iterator[StoredLetter]:
        """Every letter matching, in full, in arrival order, read a batch at a time (export)."""
        sql, params = where(selection, self._backend)
        after = 0
        while True:
            rows = self._store.execute(
                f"SELECT {FULL_COLUMNS} FROM dead_letters WHERE {sql} AND id > ? ORDER BY id LIMIT ?",
                [*params, after, batch],
            ).fetchall()
            for row in rows:
                yield stored(row, [])
            if len(rows) < batch:
                return
            after = int(rows[-1][0])

    def groups(
        self,
        selection: LetterFilter = UNRESOLVED,
        *,
        hours: int = 24,
        now: datetime | None = None,
        limit: int = 100,
    ) -> list[Group]:
        """The groups of the letters matching, largest first, each with its count, first and
        last seen, and a per-hour trend over the last `hours`; read in one read-only transaction,
        so the counts and the trends agree."""
        with self._store.reading():
            return self._groups(selection, hours, now, limit)

    def _groups(self, selection: LetterFilter, hours: int, now: datetime | None, limit: int) -> list[Group]:
        sql, params = where(selection, self._backend)
        rows = self._store.execute(
            "SELECT fingerprint, count(*), min(seen_at_us), max(seen_at_us) FROM dead_letters"
            f" WHERE {sql} GROUP BY fingerprint ORDER BY count(*) DESC, fingerprint LIMIT ?",
            [*params, limit],
        ).fetchall()
        if not rows:
            return []
        prints = [row[0] for row in rows]
        one_of, more = self._backend.any_of("text", prints)
        names = {
            row[0]: row[1:]
            for row in self._store.execute(
                "SELECT fingerprint, reason, event_type, pattern FROM dead_letter_groups"
                f" WHERE fingerprint {one_of}",
                more,
            ).fetchall()
        }
        end_us = (now_us() if now is None else to_us(now)) // _HOUR_US * _HOUR_US + _HOUR_US
        start_us = end_us - hours * _HOUR_US
        trends = {name: [0] * hours for name in prints}
        for name, hour, count in self._store.execute(
            "SELECT fingerprint, hour, count(*) FROM ("
            f" SELECT fingerprint, (seen_at_us - ?) / {_HOUR_US} AS hour FROM dead_letters"
            f" WHERE {sql} AND seen_at_us >= ? AND seen_at_us < ? AND fingerprint {one_of}"
            ") AS recent GROUP BY fingerprint, hour",
            [start_us, *params, start_us, end_us, *more],
        ).fetchall():
            trends[name][int(hour)] = int(count)
        return [
            Group(
                fingerprint=name,
                reason=names.get(name, ("?", None, ""))[0],
                event_type=names.get(name, ("?", None, ""))[1],
                pattern=names.get(name, ("?", None, ""))[2],
                count=int(count),
                first_seen=at(first),
                last_seen=at(last),
                trend=trends[name],
            )
            for name, count, first, last in rows
        ]


def _search_text(letter: NewLetter) -> str:
    """What `--text` searches, lower-cased: ids, type, reason, detail, origin, the body's start."""
    parts = [
        letter.event_id,
        letter.event_type,
        letter.reason,
        letter.detail,
        letter.message_id,
        *(letter.origin or ()),
        letter.body[:_SEARCHED_BODY].decode("utf-8", "replace"),
    ]
    return clean("\n".join(part for part in parts if part)).lower()
