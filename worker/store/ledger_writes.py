"""How a batch writes the reminder ledger and the owner history, and how a confirm stamps the
ledger: one insert per table per batch, in the batch's own transaction; one update per confirmed
batch, where its outbox rows are deleted. Two strategies, as for the projection
(`projection_writes`), and the backend's write strategy carries the one that suits it
(`ProjectionWrites.ledger`): set-based statements for PostgreSQL, prepared ones run over every
row for SQLite.

The rows are built by `worker.service.ledger`; here they are only written, in the column order
below. `published_at_us` and `confirmed_at_us` are never inserted: the confirm sets them, finding
the row by its number (`seq`), which the outbox row keeps (`outbox.ledger_seq`): no index on the
notification id has to be kept up at every insert for it.
"""

from collections.abc import Sequence
from typing import Any, NamedTuple

from worker.store.backend import Backend, Statements, chunks
from worker.store.model import StoreError

LEDGER_COLUMNS = (
    ("event_id", "text"),
    ("partner_id", "text"),
    ("client_id", "text"),
    ("renewal_date", "text"),
    ("days_until_renewal", "bigint"),
    ("handled_at_us", "bigint"),
    ("outcome", "text"),
    ("reason", "text"),
    ("rule_row", "bigint"),
    ("resolved_from", "text"),
    ("fallback", "text"),
    ("to_address", "text"),
    ("cc_address", "text"),
    ("owner", "text"),
    ("owner_scope", "text"),
    ("owner_event_id", "text"),
    ("owner_changed_at_us", "bigint"),
    ("decision_maker", "text"),
    ("decision_maker_event_id", "text"),
    ("notification_id", "text"),
    ("letter_id", "bigint"),
    ("replay_operation", "text"),
    ("detail", "text"),
)
HISTORY_COLUMNS = (
    ("partner_id", "text"),
    ("client_id", "text"),
    ("owner_before", "text"),
    ("contact_before", "text"),
    ("owner_after", "text"),
    ("contact_after", "text"),
    ("event_id", "text"),
    ("changed_at_us", "bigint"),
    ("received_at_us", "bigint"),
    ("won", "integer"),
    ("lost_to_event_id", "text"),
)

LedgerRow = tuple[Any, ...]
"""One reminder_ledger row: the values of `LEDGER_COLUMNS`, in that order."""
HistoryRow = tuple[Any, ...]
"""One owner_history row: the values of `HISTORY_COLUMNS`, in that order."""


class Confirmed(NamedTuple):
    """An outbox row the broker confirmed, with when it was published (None: not known, e.g. a
    republished row) and when the confirm came (µs since the epoch)."""

    seq: int
    published_at_us: int | None
    confirmed_at_us: int


def _insert(table: str, columns: Sequence[tuple[str, str]]) -> str:
    return f"INSERT INTO {table} ({', '.join(name for name, _type in columns)}) "


def _marks(columns: Sequence[Any]) -> str:
    return "VALUES (" + ", ".join("?" * len(columns)) + ")"


_LEDGER_INSERT = _insert("reminder_ledger", LEDGER_COLUMNS)
_LEDGER_TYPES = tuple(type_ for _name, type_ in LEDGER_COLUMNS)
_HISTORY_INSERT = _insert("owner_history", HISTORY_COLUMNS)
_HISTORY_TYPES = tuple(type_ for _name, type_ in HISTORY_COLUMNS)
_EVENT = HISTORY_COLUMNS.index(("event_id", "text"))
_LOST_TO = HISTORY_COLUMNS.index(("lost_to_event_id", "text"))
_WON = HISTORY_COLUMNS.index(("won", "integer"))
_NOTIFICATION = LEDGER_COLUMNS.index(("notification_id", "text"))
_OUTCOME = LEDGER_COLUMNS.index(("outcome", "text"))
_STAMP = (
    "UPDATE reminder_ledger SET published_at_us = COALESCE({published}, {confirmed}),"
    " confirmed_at_us = {confirmed} FROM {source} WHERE reminder_ledger.seq = o.ledger_seq"
    " AND reminder_ledger.confirmed_at_us IS NULL"
)


_NAME_THE_WINNER = (
    "UPDATE owner_history SET lost_to_event_id = (SELECT s.event_id FROM owner_settings AS s"
    " WHERE s.partner_id = owner_history.partner_id AND s.client_id = owner_history.client_id)"
    " WHERE won = 0 AND lost_to_event_id IS NULL AND event_id "
)


def _raced(rows: Sequence[HistoryRow]) -> list[str]:
    """The changes that lost to another worker's commit, which the batch could not name."""
    return sorted({row[_EVENT] for row in rows if not row[_WON] and row[_LOST_TO] is None})


def notified(rows: Sequence[LedgerRow], seqs: Sequence[int]) -> dict[str, int]:
    """The ledger numbers of the rows that notified, by notification id, given every row's."""
    return {
        row[_NOTIFICATION]: seq for row, seq in zip(rows, seqs, strict=True) if row[_OUTCOME] == "notified"
    }


class LedgerOutOfStep(StoreError):
    """The ledger or outbox rows a batch inserted did not get the numbers SQLite gives (one more
    than the largest, row after row): a bug, or a table grown to the largest rowid. The batch
    fails."""


class LedgerWrites:
    """Multi-row statements whose text is the same whatever the number of rows (PostgreSQL's
    arrays, unnested): a chunk at a time, one statement per table."""

    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def reminders(self, db: Statements, rows: Sequence[LedgerRow]) -> dict[str, int]:
        """Insert the batch's ledger rows; the numbers of those that notified, by notification id."""
        numbered: dict[str, int] = {}
        for chunk in chunks(rows):
            source, params = self._backend.rows(_LEDGER_TYPES, chunk)
            returned = db.execute(
                _LEDGER_INSERT + source + " RETURNING seq, outcome, notification_id", params
            ).fetchall()
            numbered.update({notice: seq for seq, outcome, notice in returned if outcome == "notified"})
        return numbered

    def owner_changes(self, db: Statements, rows: Sequence[HistoryRow]) -> None:
        """Insert the batch's owner-history rows; a change that lost to one another worker
        committed meanwhile (the batch could not know its id) is then given the id of the change
        that stands."""
        for chunk in chunks(rows):
            source, params = self._backend.rows(_HISTORY_TYPES, chunk)
            db.execute(_HISTORY_INSERT + source, params)
        for chunk in chunks(_raced(rows)):
            one_of, params = self._backend.any_of("text", chunk)
            db.execute(_NAME_THE_WINNER + one_of, params)

    def confirmed(self, db: Statements, confirmed: Sequence[Confirmed]) -> None:
        """Set the published and confirmed times of the reminders these outbox rows notified
        (before the rows are deleted: the outbox row names the notification)."""
        for chunk in chunks(sorted(confirmed)):
            table, params = self._backend.table(("bigint", "bigint", "bigint"), chunk)
            source = f"{table} JOIN outbox AS o ON o.seq = k.column1"
            db.execute(_STAMP.format(published="k.column2", confirmed="k.column3", source=source), params)


class EachLedgerWrites:
    """One prepared statement per kind, run over all its rows with `executemany`: for SQLite,
    in-process, where a multi-row statement's text changes with its number of rows and would
    be parsed again for each batch size (the projection's `SerializedWrites` does the same)."""

    def __init__(self) -> None:
        self._reminders = _LEDGER_INSERT + _marks(LEDGER_COLUMNS)
        self._owner_changes = _HISTORY_INSERT + _marks(HISTORY_COLUMNS)
        self._confirmed = (
            _STAMP.format(published="?", confirmed="?", source="outbox AS o") + " AND o.seq BETWEEN ? AND ?"
        )

    def reminders(self, db: Statements, rows: Sequence[LedgerRow]) -> dict[str, int]:
        """Insert the batch's ledger rows; the numbers of those that notified, by notification id
        (numbered as `insert_numbered` says)."""
        if not rows:
            return {}
        return notified(rows, insert_numbered(db, self._reminders, rows, ("reminder_ledger", "event_id", 0)))

    def owner_changes(self, db: Statements, rows: Sequence[HistoryRow]) -> None:
        """As `LedgerWrites.owner_changes`: a batch that decided before it took the write lock
        may have lost a change to another worker's commit."""
        db.execute_many(self._owner_changes, rows)
        for chunk in chunks(_raced(rows)):
            db.execute(_NAME_THE_WINNER + "IN (" + ", ".join("?" * len(chunk)) + ")", chunk)

    def confirmed(self, db: Statements, confirmed: Sequence[Confirmed]) -> None:
        """One statement per run of consecutive rows published and confirmed together: a batch's
        rows are numbered in a row and confirmed at once, so a batch is one run, not one
        statement per row."""
        db.execute_many(
            self._confirmed,
            [(published, at, at, first, last) for first, last, published, at in runs(confirmed)],
        )


def insert_numbered(
    db: Statements, insert: str, rows: Sequence[Sequence[Any]], check: tuple[str, str, int]
) -> range:
    """Run the one-row `insert` over the rows, under SQLite's write lock; the numbers (`seq`)
    they were given, in order. A row inserted without a number gets one more than the largest
    in the table: the rows are numbered last - n + 1 ... last. `check` (table, column, index
    of that column in a row) names a column by which the first and the last row are looked up
    to make sure."""
    table, column, index = check
    db.execute_many(insert, rows)
    last = int(db.execute("SELECT last_insert_rowid()").fetchone()[0])
    first = last - len(rows) + 1
    found = dict(db.execute(f"SELECT seq, {column} FROM {table} WHERE seq IN (?, ?)", (first, last)))
    if found != {first: rows[0][index], last: rows[-1][index]}:
        raise LedgerOutOfStep(f"{table} rows {first}..{last} are not the {len(rows)} rows just inserted")
    return range(first, last + 1)


def runs(confirmed: Sequence[Confirmed]) -> list[tuple[int, int, int | None, int]]:
    """The confirmed rows as runs `(first, last, published, confirmed)`: every row numbered first to
    last, and only those, was published and confirmed at those moments."""
    found: list[tuple[int, int, int | None, int]] = []
    for seq, published, at in sorted(confirmed):
        if found and found[-1][1] == seq - 1 and found[-1][2:] == (published, at):
            found[-1] = (found[-1][0], seq, published, at)
        elif not found or found[-1][1] != seq:  # a row confirmed twice is stamped once
            found.append((seq, seq, published, at))
    return found
