"""What the console does to dead letters, for pages and API alike: each request is checked
here, done by the one use case `renewals dlq` runs too (`worker.dead_letters.actions`, which
audits it in the store under an operation id), and said in one `console.action` log line."""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, Field, field_validator

from worker.console.identity import Identity
from worker.console.params import VALUES_MAX, Blank, Count, Many, NoteText, RowId, SearchText, Text
from worker.dead_letters import Plan, Routes, parse_at
from worker.dead_letters import actions as use_cases
from worker.dead_letters import replays as replay_runs
from worker.dead_letters.model import STATUSES, LetterFilter, ReplayOperation, Status
from worker.dead_letters.outline import OutlinedLetter
from worker.dead_letters.records import DeadLetterRecords
from worker.logs import get_logger
from worker.settings import MAX_REPLAY_RATE
from worker.store import SqlStore, WorkingSet
from worker.tools.owners import Ownership, ownership

log = get_logger("worker.console")

DEFAULT_MAX_REPLAYS = 3
PREVIEW_LIMIT = 200


class RefusedAction(ValueError):
    """The request makes no sense as given; the message says what to change."""


T = TypeVar("T")
Values = Annotated[list[T], Many, Field(max_length=VALUES_MAX)]


def _unresolved() -> list[Status]:
    return ["new"]


class Selection(BaseModel):
    """Which dead letters: filters combine with AND, values of one filter with OR. An action
    on every letter needs `all`, so an empty form never selects everything by accident."""

    reason: Values[Text] = Field(default_factory=list, description="failure reasons")
    type: Values[Text] = Field(default_factory=list, description="event types")
    id: Values[Text] = Field(default_factory=list, description="event ids")
    group: Values[Text] = Field(default_factory=list, description="group fingerprints")
    letter: Values[RowId] = Field(default_factory=list, description="letter (row) ids")
    text: Annotated[SearchText | None, Blank] = Field(
        None, description="case-insensitive text in id, type, reason, detail or body"
    )
    since: Annotated[datetime | None, Blank] = Field(None, description="failed at or after")
    until: Annotated[datetime | None, Blank] = Field(None, description="failed before")
    status: Values[Status] = Field(default_factory=_unresolved, description="statuses (default: new)")
    limit: Annotated[Count | None, Blank] = Field(None, description="at most this many, oldest first")
    all: bool = Field(False, description="select every letter of the statuses (needed without filters)")

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        """A time without a zone (a browser's datetime-local field) is UTC."""
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value

    def letter_filter(self) -> LetterFilter:
        return LetterFilter(
            reasons=frozenset(self.reason),
            types=frozenset(self.type),
            event_ids=frozenset(self.id),
            groups=frozenset(self.group),
            statuses=frozenset(self.status or ["new"]),
            letter_ids=frozenset(self.letter),
            text=self.text or None,
            since=self.since,
            until=self.until,
            limit=self.limit,
        )

    def for_action(self) -> LetterFilter:
        """The filter an action may use: filtered, or all asked for in so many words."""
        chosen = self.letter_filter()
        if not chosen.filtered and not self.all:
            raise RefusedAction("select letters (a filter, a group or letter ids) or ask for all")
        return chosen


class ReplayRequest(BaseModel):
    selection: Selection
    dry_run: bool = Field(False, description="only say what a replay would do; change nothing")
    rate: float | None = Field(
        None,
        gt=0,
        le=MAX_REPLAY_RATE,
        allow_inf_nan=False,
        description="letters per second (default: RENEWALS_REPLAY_RATE)",
    )
    force: bool = Field(False, description="replay letters replayed max_replays times already")
    to_original: bool = Field(False, description="trust the letters' headers about where they came from")
    confirm_no_consumer: bool = Field(
        False, description="replay even though no worker is seen consuming the queue (else 409)"
    )
    at: datetime | None = Field(
        None,
        description="schedule it instead of replaying now: an ISO 8601 time with its zone, or a delay"
        " like +30m; the workers run it then (docs/dead-letters.md)",
    )

    @field_validator("at", mode="before")
    @classmethod
    def _due(cls, value: Any) -> datetime | None:
        """A time with its zone or a delay (+30m), never one already past (a 422 saying so)."""
        return None if value in (None, "") else parse_at(str(value))

    canary: int | None = Field(
        None, ge=1, le=10_000, description="replay this many letters first; go on only if they resolved"
    )
    canary_timeout: float | None = Field(
        None,
        gt=0,
        le=86_400,
        allow_inf_nan=False,
        description="seconds the canary waits for outcomes (default: RENEWALS_REPLAY_CANARY_TIMEOUT)",
    )


class NoteRequest(BaseModel):
    text: NoteText


def preview(
    records: DeadLetterRecords, request: ReplayRequest, routes: Routes
) -> tuple[int, list[Plan[OutlinedLetter]]]:
    """How many letters a replay would take, and what it would do with the first ones."""
    chosen = request.selection.for_action()
    plans = replay_runs.preview(
        records,
        chosen,
        routes,
        max_replays=DEFAULT_MAX_REPLAYS,
        force=request.force,
        limit=PREVIEW_LIMIT,
    )
    return records.count(chosen), plans


def archive(records: DeadLetterRecords, identity: Identity, selection: Selection) -> dict[str, Any]:
    chosen = selection.for_action()
    done = use_cases.archive(records, identity.name, chosen)
    return _done(identity, "archive", done.operation_id, chosen, done.counts)


def purge(records: DeadLetterRecords, identity: Identity, selection: Selection) -> dict[str, Any]:
    chosen = selection.for_action()
    done = use_cases.purge(records, identity.name, chosen)
    return _done(identity, "purge", done.operation_id, chosen, done.counts)


def note(records: DeadLetterRecords, identity: Identity, letter_id: int, text: str) -> dict[str, Any]:
    done = use_cases.note(records, identity.name, [letter_id], text)
    chosen = LetterFilter(letter_ids=frozenset({letter_id}))
    return _done(identity, "note", done.operation_id, chosen, {"notes": 1})


def started(identity: Identity, operation: ReplayOperation) -> None:
    _done(identity, "replay", operation.id, operation.selection, {"selected": operation.total})


def resumed(identity: Identity, operation: ReplayOperation) -> None:
    _done(identity, "resume", operation.id, operation.selection, {"done": operation.done})


def cancelled(identity: Identity, operation: ReplayOperation) -> None:
    _done(identity, "cancel", operation.id, operation.selection, {"done": operation.done})


def owner(store: SqlStore, partner_id: str, client_id: str | None) -> Ownership:
    """What `renewals owners show` looks up, read in one read-only transaction."""
    with store.read_only() as transaction:
        return ownership(WorkingSet(transaction), partner_id, client_id or None)


def last_hour(records: Callable[[], DeadLetterRecords]) -> int | None:
    """Letters that failed in the last hour, whatever became of them (None: store down)."""
    since = datetime.now(UTC) - timedelta(hours=1)
    try:
        return records().count(LetterFilter(statuses=frozenset(STATUSES), since=since))
    except Exception:  # the health strip says the store is down; this figure is just unknown
        return None


def _done(
    identity: Identity, action: str, operation_id: str | None, chosen: LetterFilter, counts: dict[str, int]
) -> dict[str, Any]:
    log.info(
        "console.action",
        action=action,
        user=identity.name,
        role=identity.role,
        via=identity.via,
        operation_id=operation_id,
        selection=chosen.describe(),
        **counts,
    )
    return {"operation_id": operation_id, "selection": chosen.describe(), **counts}
