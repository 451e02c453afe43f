"""Edit and retry's guardrails, decided before anything is sent: the switch and the types the
settings allow (`EditPolicy`), which headers are locked, whether a letter may be edited (and if
not, which guardrail says so, in one line), the operator's header changes, and the edited body
checked against the event's model and the worker's own parse. `editing` applies them."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import ValidationError

from events import INPUTS, InvalidInput, parse
from worker.dead_letters.letter import DeadLetter
from worker.dead_letters.model import VOLATILE_HEADERS, StoredLetter
from worker.dead_letters.routing import Routes
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


def locked(name: str) -> bool:
    """True for a header an edit may not set, change or remove."""
    return name in LOCKED_HEADERS or name.startswith(LOCKED_PREFIXES)


def editable_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The headers an operator may change (what the editor shows)."""
    return {name: value for name, value in headers.items() if not locked(name)}


def editable(policy: EditPolicy, letter: StoredLetter) -> str | None:
    """Why the letter cannot be edited (None: it can): the console hides its button then."""
    refused = refusal(policy, letter)
    return None if refused is None else refused[1]


def refusal(policy: EditPolicy, letter: StoredLetter) -> tuple[Refusal, str] | None:
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


def changed_headers(letter: DeadLetter, changes: Mapping[str, str | None]) -> dict[str, Any]:
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


def _content_type(letter: StoredLetter) -> str | None:
    value = letter.properties.get("content_type")
    return value if isinstance(value, str) else None
