"""Dead letters as records: what the store keeps of each, and the plain data the records hand out.

A dead letter reaches the store from the dead-letter queue, which the worker drains (consume,
insert, commit, then ack). Its row keeps the exact body, properties and headers, plus columns
read from them once at insert (reason, detail, failure time, event id and type, origin, trace
context, group) so that lists, filters and groups are index look-ups, not scans of JSON.

Lifecycle: `new` until someone acts; then `replayed`, `purged` or `archived` (the resolved
states). Every action leaves a history entry; resolved letters are pruned after the retention
period, unresolved ones stay until someone acts.

Times are aware datetimes in UTC; ids are the store's row ids (integers, in arrival order).
"""

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from worker.store import amqp_json

Status = Literal["new", "replayed", "purged", "archived"]
STATUSES: tuple[Status, ...] = ("new", "replayed", "purged", "archived")
RESOLVED: frozenset[Status] = frozenset({"replayed", "purged", "archived"})

# "erased": the letter is a tombstone, its body and the headers that named a person erased (worker/erasure).
HistoryKind = Literal[
    "replayed", "replay_failed", "replay_skipped", "purged", "archived", "note",
    "resolved", "failed_again", "replay_of", "edited", "erased",
]  # fmt: skip
# An edited letter becomes `replayed` (a copy of it went back to the worker) once the copy is
# confirmed; its history says `edited`, and the edit's before and after are an `EditRecord`.

OperationStatus = Literal["scheduled", "running", "cancelled", "finished", "paused"]

# What became of a replayed letter's copy: the worker handled it (`resolved`), or it came back
# as a new dead letter (`failed_again`). A copy only re-queued for a retry has no fate yet.
FateKind = Literal["resolved", "failed_again"]
FATES: tuple[FateKind, ...] = ("resolved", "failed_again")

# Headers the broker changes each time it hands the same letter out again: left out of the
# letter's identity, so a redelivery after a kill between insert and ack is the same letter.
VOLATILE_HEADERS = frozenset({"x-delivery-count", "x-acquired-count"})


@dataclass(frozen=True, slots=True)
class NewLetter:
    """One letter as it arrives from the dead-letter queue, read once (by the worker's drain).

    `properties` and `headers` are AMQP values as the broker layer decoded them (str, int,
    bool, float, Decimal, datetime, bytes, None, lists and tables of them), bounded by
    `worker.boundary` (what lay past its bounds is a marked string); the store keeps them so
    that a replay sends them back as they came.
    """

    body: bytes
    properties: dict[str, Any]
    headers: dict[str, Any]
    reason: str
    detail: str
    failed_at: datetime | None
    attempts: int | None
    replays: int
    event_id: str | None
    event_type: str | None
    message_id: str | None
    origin: tuple[str, str] | None  # (exchange, routing key) it was first published to, if known
    trace_parent: str | None = None  # W3C traceparent, if the letter carried one
    body_size: int | None = None  # the full size when `body` was cut (worker/dead_letters/drain.py)
    body_sha256: str | None = None  # of the full body, when cut
    problem: str | None = None  # why its properties could not be decoded (then there are none)

    @property
    def key(self) -> str:
        """The letter's identity: a digest of its body, properties and headers (without the
        broker's delivery counters). The same letter delivered twice has one key; the store
        keeps one row per key."""
        properties = {name: value for name, value in self.properties.items() if name != "headers"}
        headers = {name: value for name, value in self.headers.items() if name not in VOLATILE_HEADERS}
        digest = hashlib.sha256(amqp_json.dumps([properties, headers]).encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
        digest.update(self.body)
        digest.update((self.body_sha256 or "").encode("ascii"))
        return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class LetterFilter:
    """Which letters: filters combine with AND, the values of one filter with OR.

    `statuses` defaults to the unresolved letters. `text` is a case-insensitive substring of
    the event id, type, reason, detail, message id, origin or the body's first KiB. `since` /
    `until` bound the failure time (a letter without one matches neither). `letter_ids` are
    row ids (the console's checkboxes; the CLI's `#N`). `limit` keeps the first N in arrival
    order (a selection's `--limit`, not a page size). `up_to` keeps letters received up to
    that row id (a replay's selection frozen at its start).
    """

    reasons: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    event_ids: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    statuses: frozenset[Status] = frozenset({"new"})
    letter_ids: frozenset[int] = frozenset()
    text: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    up_to: int | None = None

    @property
    def filtered(self) -> bool:
        """True if anything narrows the selection beyond the status (a limit alone counts)."""
        return bool(
            self.reasons
            or self.types
            or self.event_ids
            or self.groups
            or self.letter_ids
            or self.text
            or self.since
            or self.until
            or self.limit is not None
        )

    def describe(self) -> str:
        """The filters as the command line spells them, for messages and the audit."""
        words = [f"--reason {value}" for value in sorted(self.reasons)]
        words += [f"--type {value}" for value in sorted(self.types)]
        words += [f"--id {value}" for value in sorted(self.event_ids)]
        words += [f"--group {value}" for value in sorted(self.groups)]
        words += [f"#{value}" for value in sorted(self.letter_ids)]
        words += [f"--text {self.text!r}"] if self.text else []
        words += [
            f"--{name} {moment.isoformat()}"
            for name, moment in (("since", self.since), ("until", self.until))
            if moment
        ]
        words += [f"--limit {self.limit}"] if self.limit is not None else []
        if self.statuses != {"new"}:
            words += [f"--status {status}" for status in STATUSES if status in self.statuses]
        return " ".join(words) or "all"

    def as_json(self) -> dict[str, Any]:
        """JSON-safe, for an operation's stored selection; `from_json` reads it back."""
        return {
            "reasons": sorted(self.reasons),
            "types": sorted(self.types),
            "event_ids": sorted(self.event_ids),
            "groups": sorted(self.groups),
            "statuses": sorted(self.statuses),
            "letter_ids": sorted(self.letter_ids),
            "text": self.text,
            "since": None if self.since is None else self.since.isoformat(),
            "until": None if self.until is None else self.until.isoformat(),
            "limit": self.limit,
            "up_to": self.up_to,
        }

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> "LetterFilter":
        def moment(name: str) -> datetime | None:
            value = document.get(name)
            return None if value is None else datetime.fromisoformat(value)

        return cls(
            reasons=frozenset(document.get("reasons", ())),
            types=frozenset(document.get("types", ())),
            event_ids=frozenset(document.get("event_ids", ())),
            groups=frozenset(document.get("groups", ())),
            statuses=frozenset(document.get("statuses", ("new",))),
            letter_ids=frozenset(document.get("letter_ids", ())),
            text=document.get("text"),
            since=moment("since"),
            until=moment("until"),
            limit=document.get("limit"),
            up_to=document.get("up_to"),
        )


@dataclass(frozen=True, slots=True)
class LetterSummary:
    """One row of a list: everything but the body, properties and headers."""

    id: int
    status: Status
    event_id: str | None
    event_type: str | None
    reason: str
    detail: str
    group: str  # the fingerprint
    failed_at: datetime | None
    received_at: datetime
    attempts: int | None
    replays: int
    message_id: str | None
    origin: tuple[str, str] | None
    resolved_at: datetime | None
    body_size: int


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """Something that happened to a letter. For a replay: `operation_id`, `to` (exchange,
    routing key), `outcome` ("published", or why it failed or was skipped) and the published
    copy's `message_id`. For a replay's fate: `resolved` (`message_id` the notification it
    caused, if any) or `failed_again` (`linked_letter` the new letter), and on that new letter
    `replay_of` (`linked_letter` the letter it was a replay of). For a note: `text`."""

    at: datetime
    kind: HistoryKind
    actor: str
    operation_id: str | None = None
    to: tuple[str, str] | None = None
    outcome: str | None = None
    message_id: str | None = None
    text: str | None = None
    linked_letter: int | None = None


@dataclass(frozen=True, slots=True)
class Fate:
    """What became of a replayed letter: `detail` names the notification it caused (or says none
    was needed), or the new letter's reason; `next_letter` is that new letter."""

    kind: FateKind
    at: datetime
    operation_id: str | None
    detail: str | None
    next_letter: int | None = None


@dataclass(frozen=True, slots=True)
class StoredLetter:
    """One letter in full: its summary, exact body, properties and headers, history (oldest
    first; notes among it, as kind "note")."""

    summary: LetterSummary
    body: bytes
    properties: dict[str, Any]  # AMQP values as they came, `headers` not among them
    headers: dict[str, Any]
    trace_parent: str | None
    body_truncated: bool
    body_sha256: str | None
    problem: str | None = None  # why its properties could not be decoded (then there are none)
    history: list[HistoryEntry] = field(default_factory=list)
    fate: Fate | None = None  # what became of its replay, once known
    previous_letter: int | None = None  # the letter this one is a failed replay of

    @property
    def notes(self) -> list[HistoryEntry]:
        return [entry for entry in self.history if entry.kind == "note"]

    @property
    def erasure(self) -> HistoryEntry | None:
        """The erasure that made this letter a tombstone (None: it is whole)."""
        return next((entry for entry in self.history if entry.kind == "erased"), None)


@dataclass(frozen=True, slots=True)
class Page:
    """Some letters and where the next page starts (None: this was the last). Pages are
    keyset pages: `after` the last id seen, so a page costs the same at row 10 as at 100,000."""

    letters: list[LetterSummary]
    next_after: int | None


@dataclass(frozen=True, slots=True)
class Group:
    """Letters sharing a fingerprint: reason, event type and the detail with its values taken
    out (numbers, ids, quoted values). `count` counts the letters in the statuses asked for;
    `trend` is letters received per hour over the last `hours`, oldest hour first."""

    fingerprint: str
    reason: str
    event_type: str | None
    pattern: str
    count: int
    first_seen: datetime
    last_seen: datetime
    trend: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ReplayOperation:
    """A replay as a row: it can be throttled, cancelled from another process, resumed, and
    shown with its progress. `selection` is frozen at the start (`up_to` the last row id
    then); `total` is how many letters it selected then."""

    id: str
    actor: str
    selection: LetterFilter
    status: OperationStatus
    rate: float | None  # letters per second; None: as fast as the broker confirms
    to_original: bool
    force: bool
    max_replays: int
    dry_run: bool
    started_at: datetime
    updated_at: datetime
    total: int
    replayed: int = 0
    skipped: int = 0
    failed: int = 0
    cancel_requested: bool = False
    not_before: datetime | None = None  # a scheduled replay waits until then (`--at`)
    resolved: int = 0  # replayed letters whose copies the worker handled
    failed_again: int = 0  # replayed letters whose copies came back as new dead letters
    canary: int = 0  # letters replayed first, whose outcomes decide whether the rest go
    canary_result: str | None = None  # "passed", "failed", "timed out", "waived" (resumed after one)
    pause_reason: str | None = None  # why a paused replay stopped (its canary, its brake)

    @property
    def done(self) -> int:
        return self.replayed + self.skipped + self.failed

    @property
    def pending(self) -> int:
        """Replayed letters whose copies have no outcome yet (in the queue, or being retried)."""
        return max(0, self.replayed - self.resolved - self.failed_again)


@dataclass(frozen=True, slots=True)
class Claimed:
    """A letter a replay operation holds: nobody else replays it until released or settled,
    or until the claim's lease runs out (its process died)."""

    letter: StoredLetter
    operation_id: str


@dataclass(frozen=True, slots=True)
class EditRecord:
    """One confirmed edit of a letter, whole both ways: the body and headers before (as the
    letter came) and after (as the copy went), the copy's new message id and where it went."""

    letter_id: int
    operation_id: str
    at: datetime
    actor: str
    body_before: bytes
    body_after: bytes
    headers_before: dict[str, Any]
    headers_after: dict[str, Any]
    message_id: str
    to: tuple[str, str]


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One action, as the audit keeps it: who, what, on which selection, with which result."""

    at: datetime
    actor: str
    action: str  # "replay", "purge", "archive", "note", "export", "cancel", "edit"
    operation_id: str | None
    selection: str
    counts: dict[str, int]
    result: str


_NUMBERS = re.compile(r"\b\d[\d_.:\-]*\b")
_HEX_IDS = re.compile(r"\b[0-9a-fA-F]{8,}(?:-[0-9a-fA-F]{4,}){0,4}\b")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def normalised_detail(detail: str) -> str:
    """The detail with its values taken out: quoted values, ids and numbers become `…`, so
    letters failing at the same place for different records fall in one group."""
    pattern = _QUOTED.sub("'…'", detail)
    pattern = _HEX_IDS.sub("…", pattern)
    pattern = _NUMBERS.sub("…", pattern)
    return " ".join(pattern.split())[:200]


def fingerprint(reason: str, event_type: str | None, detail: str) -> str:
    """A group's id: 16 hex digits of the SHA-256 of reason, type and normalised detail."""
    source = "\x1f".join((reason, event_type or "", normalised_detail(detail)))
    return hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()[:16]
