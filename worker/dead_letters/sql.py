"""How the dead-letter records read and write rows: the WHERE clause of a `LetterFilter`, the
columns, and rows into the plain data of `letters`. Shared by the recorder and the replay book."""

import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.boundary import guarded
from worker.dead_letters.model import (
    AuditEntry,
    Fate,
    HistoryEntry,
    LetterFilter,
    LetterSummary,
    ReplayOperation,
    StoredLetter,
)
from worker.store import amqp_json
from worker.store.backend import Backend

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

SUMMARY_COLUMNS = (
    "id, status, event_id, event_type, reason, detail, fingerprint, failed_at_us, received_at_us,"
    " attempts, replays, message_id, origin_exchange, origin_routing_key, resolved_at_us, body_size"
)
FULL_COLUMNS = (
    SUMMARY_COLUMNS + ", body, properties, headers, trace_parent, body_sha256, problem,"
    " fate, fate_at_us, fate_operation_id, fate_detail, next_letter_id, previous_letter_id"
)
HISTORY_COLUMNS = (
    "at_us, kind, actor, operation_id, to_exchange, to_routing_key, outcome, message_id, text,"
    " linked_letter_id"
)
OPERATION_COLUMNS = (
    "id, actor, selection, status, rate, to_original, force, max_replays, dry_run, started_at_us,"
    " updated_at_us, total, replayed, skipped, failed, cancel_requested, not_before_us"
)
# An operation as it is read: its row, its canary and pause, and its letters' fates counted (by
# the index on the fates' operation, not a counter every worker's batch would queue on).
OPERATION_READ = (
    OPERATION_COLUMNS + ", canary, canary_result, pause_reason,"
    " (SELECT count(*) FROM dead_letters AS d WHERE d.fate_operation_id = dead_letter_replays.id"
    " AND d.fate = 'resolved'),"
    " (SELECT count(*) FROM dead_letters AS d WHERE d.fate_operation_id = dead_letter_replays.id"
    " AND d.fate = 'failed_again')"
)
AUDIT_COLUMNS = "at_us, actor, action, operation_id, selection, counts, result"


def where(selection: LetterFilter, backend: Backend) -> tuple[str, list[Any]]:
    """The filter as SQL over `dead_letters` (unqualified columns) and its parameters."""
    clauses, params = _clauses(selection, backend)
    if selection.limit is not None:
        inner = " AND ".join(clauses) or "1 = 1"
        clauses = [f"id IN (SELECT id FROM dead_letters WHERE {inner} ORDER BY id LIMIT ?)"]
        params = [*params, selection.limit]
    return " AND ".join(clauses) or "1 = 1", params


def _clauses(selection: LetterFilter, backend: Backend) -> tuple[list[str], list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []

    def one_of(column: str, type_: str, values: Sequence[Any]) -> None:
        if len(values) == 1:  # an equality the planner can match to an index's order
            clauses.append(f"{column} = ?")
            params.extend(values)
            return
        sql, more = backend.any_of(type_, sorted(values))
        clauses.append(f"{column} {sql}")
        params.extend(more)

    for column, type_, values in (
        ("status", "text", selection.statuses),
        ("reason", "text", selection.reasons),
        ("event_type", "text", selection.types),
        ("event_id", "text", selection.event_ids),
        ("fingerprint", "text", selection.groups),
        ("id", "bigint", selection.letter_ids),
    ):
        if values:
            one_of(column, type_, [clean(value) if isinstance(value, str) else value for value in values])
    if selection.text:
        clauses.append("search_text LIKE ? ESCAPE '\\'")
        params.append("%" + _escaped(clean(selection.text).lower()) + "%")
    if selection.since is not None:
        clauses.append("failed_at_us >= ?")
        params.append(to_us(selection.since))
    if selection.until is not None:
        clauses.append("failed_at_us < ?")
        params.append(to_us(selection.until))
    if selection.up_to is not None:
        clauses.append("id <= ?")
        params.append(selection.up_to)
    return clauses, params


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def clean(text: str) -> str:
    """Text as both databases store it: no NUL (PostgreSQL refuses it), no lone surrogate."""
    return text.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")


def maybe(text: str | None) -> str | None:
    return None if text is None else clean(text)


def to_us(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MICROSECOND


def from_us(us: int | None) -> datetime | None:
    return None if us is None else at(us)


def at(us: int) -> datetime:
    """The moment `us` microseconds after the epoch. A failure time UTC cannot hold (a header
    saying 9999-12-31T23:59:59-23:59) is stored exactly but handed out as the last (or first)
    moment a datetime holds; its header still says it as it came."""
    try:
        return _EPOCH + timedelta(microseconds=int(us))
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC) if us > 0 else datetime.min.replace(tzinfo=UTC)


def now_us() -> int:
    return time.time_ns() // 1000


def summary(row: Sequence[Any]) -> LetterSummary:
    origin = None if row[12] is None or row[13] is None else (row[12], row[13])
    return LetterSummary(
        id=int(row[0]),
        status=row[1],
        event_id=row[2],
        event_type=row[3],
        reason=row[4],
        detail=row[5],
        group=row[6],
        failed_at=from_us(row[7]),
        received_at=at(row[8]),
        attempts=None if row[9] is None else int(row[9]),
        replays=int(row[10]),
        message_id=row[11],
        origin=origin,
        resolved_at=from_us(row[14]),
        body_size=int(row[15]),
    )


def stored(row: Sequence[Any], history: list[HistoryEntry]) -> StoredLetter:
    """The row as a letter, its properties and headers bounded (`amqp_json.loads`). A row whose
    properties or headers cannot be read (JSON an older release wrote over 1,000 levels deep)
    is handed out alone without them, and its `problem` says why: the console, `dlq show` and a
    replay read it, and the letters beside it, as any other."""

    def unread(why: str) -> StoredLetter:
        problem = f"{row[21] + '; ' if row[21] else ''}its stored properties could not be read: {why}"
        return _stored(row, history, {}, {}, problem)

    return guarded(
        lambda: _stored(row, history, amqp_json.loads(row[17]), amqp_json.loads(row[18]), row[21]), unread
    )


def _stored(
    row: Sequence[Any],
    history: list[HistoryEntry],
    properties: dict[str, Any],
    headers: dict[str, Any],
    problem: str | None,
) -> StoredLetter:
    return StoredLetter(
        summary=summary(row),
        body=bytes(row[16]),
        properties=properties,
        headers=headers,
        trace_parent=row[19],
        body_truncated=row[20] is not None,
        body_sha256=row[20],
        problem=problem,
        history=history,
        fate=None
        if row[22] is None
        else Fate(row[22], at(row[23]), row[24], row[25], None if row[26] is None else int(row[26])),
        previous_letter=None if row[27] is None else int(row[27]),
    )


def history_entry(row: Sequence[Any]) -> HistoryEntry:
    to = None if row[4] is None or row[5] is None else (row[4], row[5])
    return HistoryEntry(
        at=at(row[0]),
        kind=row[1],
        actor=row[2],
        operation_id=row[3],
        to=to,
        outcome=row[6],
        message_id=row[7],
        text=row[8],
        linked_letter=None if row[9] is None else int(row[9]),
    )


def operation(row: Sequence[Any]) -> ReplayOperation:
    return ReplayOperation(
        id=row[0],
        actor=row[1],
        selection=LetterFilter.from_json(json.loads(row[2])),
        status=row[3],
        rate=None if row[4] is None else float(row[4]),
        to_original=bool(row[5]),
        force=bool(row[6]),
        max_replays=int(row[7]),
        dry_run=bool(row[8]),
        started_at=at(row[9]),
        updated_at=at(row[10]),
        total=int(row[11]),
        replayed=int(row[12]),
        skipped=int(row[13]),
        failed=int(row[14]),
        cancel_requested=bool(row[15]),
        not_before=from_us(row[16]),
        canary=int(row[17]),
        canary_result=row[18],
        pause_reason=row[19],
        resolved=int(row[20]),
        failed_again=int(row[21]),
    )


def audit_entry(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(
        at=at(row[0]),
        actor=row[1],
        action=row[2],
        operation_id=row[3],
        selection=row[4],
        counts=json.loads(row[5]),
        result=row[6],
    )
