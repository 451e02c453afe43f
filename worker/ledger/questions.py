"""The ledger's questions, asked once for every front: a client's (or partner's, or recipient's)
reminders, newest first, a page at a time; and the history of a partner's owner settings. Each
question is one read-only transaction of the store (it neither waits for the worker's batches nor
holds them up)."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.store import SqlStore

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
PARTNER_WIDE = ""  # owner_history.client_id of a partner default


@dataclass(frozen=True, slots=True)
class ReminderRow:
    """One `RenewalApproaching` the worker handled, with what it decided and why."""

    seq: int
    event_id: str
    partner_id: str
    client_id: str
    renewal_date: str
    days_until_renewal: int
    handled_at_us: int
    outcome: str
    reason: str | None
    rule_row: int | None
    resolved_from: str | None
    fallback: str | None
    to_address: str | None
    cc_address: str | None
    owner: str | None
    owner_scope: str | None
    owner_event_id: str | None
    owner_changed_at_us: int | None
    decision_maker: str | None
    decision_maker_event_id: str | None
    notification_id: str | None
    published_at_us: int | None
    confirmed_at_us: int | None
    letter_id: int | None
    replay_operation: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class OwnerChange:
    """One `OwnerChanged`, applied (won) or superseded by a newer one (lost)."""

    seq: int
    partner_id: str
    client_id: str  # '' (PARTNER_WIDE): the partner default
    owner_before: str | None
    contact_before: str | None
    owner_after: str | None
    contact_after: str | None
    event_id: str
    changed_at_us: int
    received_at_us: int
    won: bool
    lost_to_event_id: str | None


@dataclass(frozen=True, slots=True)
class ReminderQuery:
    """Which reminders: the filters combine with AND; none given is every reminder."""

    client_id: str | None = None
    partner_id: str | None = None
    recipient: str | None = None  # the to or the cc address, as written
    since: datetime | None = None  # handled at or after
    until: datetime | None = None  # handled before

    def describe(self) -> str:
        """The filters in words, for a line that says nothing matched."""
        parts = [
            f"{name} {value}"
            for name, value in (
                ("client", self.client_id),
                ("partner", self.partner_id),
                ("recipient", self.recipient),
                ("since", self.since and self.since.isoformat()),
                ("until", self.until and self.until.isoformat()),
            )
            if value
        ]
        return ", ".join(parts) or "no filter"


@dataclass(frozen=True, slots=True)
class ReminderPage:
    reminders: list[ReminderRow]
    next_before: int | None  # the `before` of the next (older) page; None on the last


REMINDER_COLUMNS = ", ".join(ReminderRow.__dataclass_fields__)
CHANGE_COLUMNS = ", ".join(OwnerChange.__dataclass_fields__)


def reminders(
    store: SqlStore, query: ReminderQuery, *, before: int | None = None, limit: int = 50
) -> ReminderPage:
    """A keyset page of the reminders `query` names, newest first (by the time handled); `before`
    is the previous page's `next_before`, the number (seq) of its last row."""
    where, params = _where(query)
    if before is not None:
        # After the cursor's row in the page order (a row pruned meanwhile ends the paging).
        where.append("(handled_at_us, seq) < (SELECT handled_at_us, seq FROM reminder_ledger WHERE seq = ?)")
        params.append(before)
    sql = f"SELECT {REMINDER_COLUMNS} FROM reminder_ledger"
    if where:
        sql += " WHERE " + " AND ".join(where)
    # By the time handled (then the row's number), so that the (client_id | partner_id,
    # handled_at_us) indexes give a client's or a partner's newest rows without a sort.
    with store.read_only():
        rows = store.execute(
            f"{sql} ORDER BY handled_at_us DESC, seq DESC LIMIT ?", [*params, limit + 1]
        ).fetchall()
    found = [_reminder(row) for row in rows[:limit]]
    return ReminderPage(found, found[-1].seq if len(rows) > limit else None)


def owner_history(
    store: SqlStore, partner_id: str, client_id: str | None = None, *, limit: int = 200
) -> list[OwnerChange]:
    """A partner's owner changes, the latest change first: all of them (partner-wide and every
    client's), or, for a client, its own and the partner-wide ones (the two that decide its owner)."""
    sql = f"SELECT {CHANGE_COLUMNS} FROM owner_history WHERE partner_id = ?"
    params: list[Any] = [partner_id]
    if client_id is not None:
        sql += " AND client_id IN (?, ?)"
        params += [client_id, PARTNER_WIDE]
    with store.read_only():
        rows = store.execute(
            f"{sql} ORDER BY changed_at_us DESC, seq DESC LIMIT ?", [*params, limit]
        ).fetchall()
    return [_change(row) for row in rows]


def moment(us: int) -> datetime:
    """The moment `us` microseconds after the epoch (the first or last a datetime holds, past them)."""
    try:
        return _EPOCH + timedelta(microseconds=int(us))
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC) if us > 0 else datetime.min.replace(tzinfo=UTC)


def to_us(when: datetime) -> int:
    """A moment as microseconds since the epoch (a time without a zone is UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return (when - _EPOCH) // _MICROSECOND


def _where(query: ReminderQuery) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (("client_id", query.client_id), ("partner_id", query.partner_id)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.recipient is not None:
        where.append("(to_address = ? OR cc_address = ?)")
        params += [query.recipient, query.recipient]
    if query.since is not None:
        where.append("handled_at_us >= ?")
        params.append(to_us(query.since))
    if query.until is not None:
        where.append("handled_at_us < ?")
        params.append(to_us(query.until))
    return where, params


def _reminder(row: Sequence[Any]) -> ReminderRow:
    return ReminderRow(*row)


def _change(row: Sequence[Any]) -> OwnerChange:
    values = list(row)
    values[10] = bool(values[10])
    return OwnerChange(*values)
