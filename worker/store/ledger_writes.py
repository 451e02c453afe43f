"""How a batch writes the reminder ledger and the owner history, and how a confirm stamps the
ledger: one multi-row insert per table per batch (a chunk at a time), in the batch's own
transaction; one update per confirmed batch, where its outbox rows are deleted.

The rows are built by `worker.service.ledger`; here they are only written, in the column order
below. `published_at_us` and `confirmed_at_us` are never inserted: the confirm sets them.
"""

from collections.abc import Sequence
from typing import Any, NamedTuple

from worker.store.backend import Backend, Statements, chunks

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


_LEDGER_INSERT = _insert("reminder_ledger", LEDGER_COLUMNS)
_LEDGER_TYPES = tuple(type_ for _name, type_ in LEDGER_COLUMNS)
_HISTORY_INSERT = _insert("owner_history", HISTORY_COLUMNS)
_HISTORY_TYPES = tuple(type_ for _name, type_ in HISTORY_COLUMNS)
_LOST_TO = HISTORY_COLUMNS.index(("lost_to_event_id", "text"))
_WON = HISTORY_COLUMNS.index(("won", "integer"))


def record_reminders(db: Statements, backend: Backend, rows: Sequence[LedgerRow]) -> None:
    """Insert the batch's ledger rows: one multi-row statement per chunk."""
    for chunk in chunks(rows):
        source, params = backend.rows(_LEDGER_TYPES, chunk)
        db.execute(_LEDGER_INSERT + source, params)


def record_owner_changes(db: Statements, backend: Backend, rows: Sequence[HistoryRow]) -> None:
    """Insert the batch's owner-history rows. A change that lost to one another worker committed
    meanwhile (the batch could not know its id) is then given the id of the change that stands."""
    for chunk in chunks(rows):
        source, params = backend.rows(_HISTORY_TYPES, chunk)
        db.execute(_HISTORY_INSERT + source, params)
    raced = sorted({row[6] for row in rows if not row[_WON] and row[_LOST_TO] is None})
    for chunk in chunks(raced):
        one_of, params = backend.any_of("text", chunk)
        db.execute(
            "UPDATE owner_history SET lost_to_event_id = (SELECT s.event_id FROM owner_settings AS s"
            " WHERE s.partner_id = owner_history.partner_id AND s.client_id = owner_history.client_id)"
            f" WHERE won = 0 AND lost_to_event_id IS NULL AND event_id {one_of}",
            params,
        )


def stamp_confirmed(db: Statements, backend: Backend, confirmed: Sequence[Confirmed]) -> None:
    """Set the published and confirmed times of the reminders these outbox rows notified (before
    the rows are deleted: the outbox row names the notification)."""
    for chunk in chunks(sorted(confirmed)):
        table, params = backend.table(("bigint", "bigint", "bigint"), chunk)
        db.execute(
            "UPDATE reminder_ledger SET confirmed_at_us = k.column3,"
            " published_at_us = COALESCE(k.column2, k.column3)"
            f" FROM {table} JOIN outbox AS o ON o.seq = k.column1"
            " WHERE reminder_ledger.notification_id = o.notification_id"
            " AND reminder_ledger.outcome = 'notified' AND reminder_ledger.confirmed_at_us IS NULL",
            params,
        )
