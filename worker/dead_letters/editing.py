"""Edit and retry: a dead letter's JSON body and the headers that are not ours, changed by an
operator and sent back to the worker as a copy under a new message id, with guardrails.

Written once for `renewals dlq edit`, the console's editor and its API. Off unless
RENEWALS_DLQ_EDIT_ENABLED, and only for the event types RENEWALS_DLQ_EDIT_TYPES lists. Two
steps, so that a person sees what will change before anything is sent:

- `draft` checks everything that can be checked without the broker: the switch, the type,
  that the letter is still new, that no locked header changes, and the edited body against the
  event's model (every problem, with its field path). It changes nothing.
- `publish` holds the letter (compare-and-set: still new, and nobody else replaying or editing
  it; otherwise it says who did what), publishes the copy with publisher confirms through the
  replay publisher, and only when the broker confirms marks the original replayed, with an
  `edited` history entry, the before and after, and one audit row. A copy the broker does not
  take leaves the letter as it was (the audit says why).

The copy carries REPLAY_OF_LETTER (the letter's id), REPLAY_OPERATION (the edit's operation
id) and EDITED_FROM_MESSAGE_ID (the original's message id), so a replay's outcome tracking
covers edits too.
"""

import difflib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from events import INPUTS, InvalidInput, parse
from worker.dead_letters import values
from worker.dead_letters.letter import DeadLetter
from worker.dead_letters.model import VOLATILE_HEADERS, EditRecord, HistoryEntry, StoredLetter
from worker.dead_letters.queue import ReplayRefused
from worker.dead_letters.records import DeadLetterRecords, LetterMoved
from worker.dead_letters.replays import Republisher, as_dead_letter
from worker.dead_letters.routing import Routes, destination, target
from worker.messaging import (
    EDITED_FROM_MESSAGE_ID,
    OWN_HEADER_PREFIXES,
    OWN_HEADERS,
    REPLAY_COUNT,
    REPLAY_OF_LETTER,
    REPLAY_OPERATION,
)
from worker.settings import Settings
from worker.tools.errors import ToolError

DISABLED = "editing dead letters is off: set RENEWALS_DLQ_EDIT_ENABLED=true to allow it"
LEASE = 60.0  # seconds an edit holds its letter at most (a confirm waits 15)
MAX_HEADER_NAME_BYTES = 255
MAX_HEADER_VALUE_CHARS = 4096
# Headers an edit never changes: the worker's and the broker's own (errors, origins, deaths,
# counts), the replay links, and RabbitMQ's sender-selected routing (CC, BCC).
LOCKED_HEADERS = (
    OWN_HEADERS
    | VOLATILE_HEADERS
    | {REPLAY_COUNT, REPLAY_OF_LETTER, REPLAY_OPERATION, EDITED_FROM_MESSAGE_ID, "CC", "BCC"}
)
LOCKED_PREFIXES = (*OWN_HEADER_PREFIXES, "x-replay-", "x-edited-")
_MODELS = {kind.type: kind.model for kind in INPUTS}

Refusal = Literal["disabled", "not_allowed", "not_found", "moved", "locked", "invalid", "not_sent"]


class EditRefused(ToolError):
    """An edit not made: `refusal` says which guardrail, `problems` are its lines (a model's
    errors are one line each, `path: message`)."""

    def __init__(self, refusal: Refusal, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.refusal: Refusal = refusal
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class EditPolicy:
    """What the settings allow: the switch, the types, where a copy goes, the clock skew."""

    enabled: bool
    types: frozenset[str]
    routes: Routes
    max_future: timedelta

    @classmethod
    def of(cls, settings: Settings) -> "EditPolicy":
        return cls(
            settings.dlq_edit_enabled,
            frozenset(settings.dlq_edit_types),
            Routes.of(settings),
            timedelta(seconds=settings.max_clock_skew),
        )


@dataclass(frozen=True, slots=True)
class Draft:
    """An edit checked and ready: the letter as it was read, the copy's body and headers (the
    replay's headers with the operator's changes), and where it goes."""

    letter: StoredLetter
    body: bytes
    headers: dict[str, Any]
    to: tuple[str, str]

    def diff(self) -> list[str]:
        """The change as unified-diff lines: the headers that may change, then the body."""
        before = as_dead_letter(self.letter)
        return diff(
            self.letter.body, editable_headers(before.headers), self.body, editable_headers(self.headers)
        )


@dataclass(frozen=True, slots=True)
class Edited:
    """An edit confirmed by the broker: the copy's new message id and where it went."""

    operation_id: str
    letter_id: int
    message_id: str
    to: tuple[str, str]
    diff: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "operation_id": self.operation_id,
            "letter": self.letter_id,
            "status": "replayed",
            "message_id": self.message_id,
            "exchange": self.to[0],
            "routing_key": self.to[1],
            "diff": self.diff,
        }


def locked(name: str) -> bool:
    """True for a header an edit may not set, change or remove."""
    return name in LOCKED_HEADERS or name.startswith(LOCKED_PREFIXES)


def editable_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers an operator may change (what the editor shows)."""
    return {name: value for name, value in headers.items() if not locked(name)}


def editable(policy: EditPolicy, letter: StoredLetter) -> str | None:
    """Why the letter cannot be edited (None: it can): the console hides its button then."""
    refused = _refusal(policy, letter)
    return None if refused is None else refused[1]


def _refusal(policy: EditPolicy, letter: StoredLetter) -> tuple[Refusal, str] | None:
    """Which guardrail refuses the letter, and the line that says so."""
    if not policy.enabled:
        return "disabled", DISABLED
    event_type = letter.summary.event_type
    if event_type is None or event_type not in policy.types:
        listed = ", ".join(sorted(policy.types)) or "none"
        return "not_allowed", (
            f"dead letters of type {event_type or '(none)'} may not be edited: RENEWALS_DLQ_EDIT_TYPES"
            f" lists the types that may ({listed})"
        )
    if letter.summary.status != "new":
        return "moved", f"{_what_became(letter)}: only a new letter can be edited"
    if letter.body_truncated:
        return (
            "not_allowed",
            f"dead letter #{letter.summary.id}'s body was cut when it was recorded: it cannot be edited",
        )
    return None


def _what_became(letter: StoredLetter) -> str:
    """`dead letter #N was archived by bob at ... (operation ...)`: the latest entry of its
    history that resolved it, or its status alone."""
    resolving = [
        entry for entry in letter.history if entry.kind in ("replayed", "archived", "purged", "edited")
    ]
    if not resolving:
        return f"dead letter #{letter.summary.id} is {letter.summary.status}"
    last = resolving[-1]
    operation = f" (operation {last.operation_id})" if last.operation_id else ""
    when = last.at.isoformat(timespec="seconds")
    return f"dead letter #{letter.summary.id} was {last.kind} by {last.actor} at {when}{operation}"


def draft(
    records: DeadLetterRecords,
    policy: EditPolicy,
    letter_id: int,
    body: bytes,
    header_changes: Mapping[str, str | None] | None = None,
) -> Draft:
    """The edit checked (EditRefused saying why not); `header_changes` sets a header to a value,
    or removes it (None). Changes nothing."""
    if not policy.enabled:
        raise EditRefused("disabled", [DISABLED])
    letter = records.get(letter_id)
    if letter is None:
        raise EditRefused("not_found", [f"no dead letter #{letter_id}"])
    refused = _refusal(policy, letter)
    if refused is not None:
        raise EditRefused(refused[0], [refused[1]])
    read = as_dead_letter(letter)
    to = destination(read, policy.routes)
    if isinstance(to, str):
        raise EditRefused("not_allowed", [f"dead letter #{letter_id} cannot be sent back: {to}"])
    headers = _changed(read, header_changes or {})
    problems = validation_problems(letter, body, policy.max_future)
    if problems:
        raise EditRefused("invalid", problems)
    return Draft(letter, bytes(body), headers, to)


def _changed(letter: DeadLetter, changes: Mapping[str, str | None]) -> dict[str, Any]:
    """The replay's headers with the operator's changes; EditRefused for a locked or malformed one."""
    problems = []
    for name, value in changes.items():
        if locked(name):
            problems.append(f"header {name} is locked (the worker's own, or routing): it cannot change")
        elif not name or len(name.encode("utf-8", "surrogatepass")) > MAX_HEADER_NAME_BYTES:
            problems.append(f"header name {name[:40]!r} must be 1 to {MAX_HEADER_NAME_BYTES} bytes")
        elif not name.isprintable() or " " in name:
            problems.append(f"header name {name[:40]!r} may hold no spaces or control characters")
        elif value is not None and (len(value) > MAX_HEADER_VALUE_CHARS or not value.isprintable()):
            problems.append(
                f"header {name}: at most {MAX_HEADER_VALUE_CHARS} characters, none of them control characters"
            )
    if problems:
        raise EditRefused("locked", problems)
    headers: dict[str, Any] = letter.replay_properties()["headers"]
    for name, value in changes.items():
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


def validation_problems(letter: StoredLetter, body: bytes, max_future: timedelta) -> list[str]:
    """What is wrong with the edited body, one `path: message` line each ([] for nothing): the
    event's model, its id and type as the letter's, then the worker's own parse (content type,
    size, clock skew), so that the copy is refused here, not dead-lettered again."""
    event_type = letter.summary.event_type or ""
    model = _MODELS.get(event_type)
    if model is None:
        return [f"type: {event_type or '(none)'} is not an event the worker consumes"]
    try:
        event = model.model_validate_json(body)
    except ValidationError as exc:
        return [
            f"{'.'.join(str(step) for step in problem['loc']) or '(message)'}: {problem['msg']}"
            for problem in exc.errors(include_url=False)
        ]
    if letter.summary.event_id is not None and event.id != letter.summary.event_id:
        return [f"id: the event id is locked: it stays {letter.summary.event_id}"]
    try:
        parse(body, _content_type(letter), max_future=max_future)
    except InvalidInput as exc:
        return [exc.detail if ": " in exc.detail else f"(message): {exc.detail}"]
    return []


def publish(records: DeadLetterRecords, draft: Draft, publisher: Republisher, *, actor: str) -> Edited:
    """Hold the letter, send the copy, and mark the original replayed only once the broker
    confirms the copy (EditRefused "moved" if someone else acted meanwhile, "not_sent" if the
    broker did not take it: then the letter is as it was)."""
    done = uuid.uuid4().hex[:12]  # an operation id, as replays and actions have
    now = datetime.now(UTC)
    letter_id = draft.letter.summary.id
    selection = f"#{letter_id}"
    try:
        held = records.hold_for_edit(letter_id, done, lease=LEASE)
    except LetterMoved as exc:
        raise EditRefused("moved", [str(exc)]) from None
    read = as_dead_letter(held)
    message_id = uuid.uuid4().hex
    headers = {**draft.headers, REPLAY_OF_LETTER: letter_id, REPLAY_OPERATION: done}
    if isinstance(read.properties.get("message_id"), str):
        headers[EDITED_FROM_MESSAGE_ID] = read.properties["message_id"]
    properties = {**read.properties, "message_id": message_id, "headers": headers}
    try:
        publisher.republish(*draft.to, draft.body, properties)
    except ReplayRefused as exc:
        records.release_edit(letter_id, done, actor=actor, selection=selection, result=f"not sent: {exc}")
        raise EditRefused(
            "not_sent", [f"the broker did not take the edited copy: {exc}; #{letter_id} is unchanged"]
        ) from None
    except BaseException:
        records.release_edit(
            letter_id, done, actor=actor, selection=selection, result="not sent: interrupted"
        )
        raise
    record = EditRecord(
        letter_id=letter_id,
        operation_id=done,
        at=now,
        actor=actor,
        body_before=held.body,
        body_after=draft.body,
        headers_before=held.headers,
        headers_after=headers,
        message_id=message_id,
        to=draft.to,
    )
    entry = HistoryEntry(
        at=now,
        kind="edited",
        actor=actor,
        operation_id=done,
        to=draft.to,
        outcome="published an edited copy",
        message_id=message_id,
    )
    records.settle_edit(
        record, entry, selection=selection, result=f"published {message_id} to {target(draft.to)}"
    )
    return Edited(done, letter_id, message_id, draft.to, draft.diff())


def diff(
    body_before: bytes, headers_before: Mapping[str, Any], body_after: bytes, headers_after: Mapping[str, Any]
) -> list[str]:
    """Unified-diff lines (no line endings) of the headers, one `name: value` a line, then
    the bodies, indented as JSON where they are JSON."""
    return [
        *difflib.unified_diff(
            _header_lines(headers_before),
            _header_lines(headers_after),
            "headers before",
            "headers after",
            lineterm="",
        ),
        *difflib.unified_diff(
            pretty(body_before).splitlines(),
            pretty(body_after).splitlines(),
            "body before",
            "body after",
            lineterm="",
        ),
    ]


def record_diff(record: EditRecord) -> list[str]:
    """An edit's before and after as `diff` shows them."""
    return diff(
        record.body_before,
        editable_headers(record.headers_before),
        record.body_after,
        editable_headers(record.headers_after),
    )


def edit_document(record: EditRecord) -> dict[str, Any]:
    """An edit, JSON-safe, whole both ways (the CLI's `dlq edits --json` and the API's)."""

    def side(body: bytes, headers: dict[str, Any]) -> dict[str, Any]:
        encoding, text = values.body_text(body)
        return {"headers": values.plain(headers), "body_encoding": encoding, "body": text}

    return {
        "operation_id": record.operation_id,
        "letter": record.letter_id,
        "at": record.at.isoformat(timespec="milliseconds"),
        "actor": record.actor,
        "message_id": record.message_id,
        "exchange": record.to[0],
        "routing_key": record.to[1],
        "before": side(record.body_before, record.headers_before),
        "after": side(record.body_after, record.headers_after),
        "diff": record_diff(record),
    }


def pretty(body: bytes) -> str:
    """Indented JSON if the body is JSON, else the text (undecodable bytes escaped)."""
    text = body.decode("utf-8", "backslashreplace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than JSON is read here
        return text


def _header_lines(headers: Mapping[str, Any]) -> list[str]:
    return [f"{name}: {value}" for name, value in sorted(headers.items())]


def _content_type(letter: StoredLetter) -> str | None:
    value = letter.properties.get("content_type")
    return value if isinstance(value, str) else None
