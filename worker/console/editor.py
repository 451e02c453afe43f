"""Edit and retry in the console, for its editor page and its API alike: the request, the one
use case (`worker.dead_letters.actions.draft_edit` and `edit`, as `renewals dlq edit` runs
them) with a replay publisher of the console's settings, and each refusal's HTTP status."""

import hashlib
import json
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import BaseModel, Field

from worker.broker.endpoints import from_settings
from worker.console.identity import Identity
from worker.dead_letters import DeadLetterError, ReplayPublisher, as_dead_letter, destination, target
from worker.dead_letters import actions as use_cases
from worker.dead_letters.edit_diff import pretty, record_diff
from worker.dead_letters.editing import Draft, Edited
from worker.dead_letters.guardrails import (
    MAX_HEADER_NAME_BYTES,
    MAX_HEADER_VALUE_CHARS,
    EditPolicy,
    EditRefused,
    Refusal,
    editable_headers,
    locked,
)
from worker.dead_letters.model import StoredLetter
from worker.dead_letters.records import DeadLetterRecords
from worker.logs import get_logger
from worker.settings import Settings

log = get_logger("worker.console")

STATUS: dict[Refusal, int] = {
    "disabled": 403,
    "not_allowed": 403,
    "not_found": 404,
    "moved": 409,
    "locked": 422,
    "invalid": 422,
    "not_sent": 502,
}
MAX_HEADERS = 64
HeaderName = Annotated[str, Field(min_length=1, max_length=MAX_HEADER_NAME_BYTES)]
HeaderValue = Annotated[str | None, Field(max_length=MAX_HEADER_VALUE_CHARS)]


class EditRequest(BaseModel):
    """An edited letter: its body (the event as a JSON object, or its text) and the headers
    that are not ours to set (a value) or remove (null)."""

    body: dict[str, Any] | str = Field(description="the edited event: a JSON object, or its JSON text")
    headers: dict[HeaderName, HeaderValue] = Field(
        default_factory=dict, max_length=MAX_HEADERS, description="headers to set (or remove: null)"
    )

    def body_bytes(self) -> bytes:
        return self.body.encode() if isinstance(self.body, str) else json.dumps(self.body).encode()


class EditProblem(Exception):
    """An edit not made, as HTTP says it: `status`, and one line per problem."""

    def __init__(self, status: int, refusal: str, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.status, self.refusal, self.problems = status, refusal, problems

    def detail(self) -> dict[str, Any]:
        return {"refusal": self.refusal, "errors": self.problems}


def edit(
    settings: Settings, records: DeadLetterRecords, identity: Identity, letter_id: int, request: EditRequest
) -> Edited:
    """Check the edit, then send its copy with confirms (EditProblem saying why not)."""
    return send(
        settings,
        records,
        identity,
        checked(settings, records, letter_id, request.body_bytes(), request.headers),
    )


def checked(
    settings: Settings,
    records: DeadLetterRecords,
    letter_id: int,
    body: bytes,
    changes: dict[str, str | None],
) -> Draft:
    """The edit checked, nothing sent (EditProblem saying why not)."""
    try:
        return use_cases.draft_edit(records, EditPolicy.of(settings), letter_id, body, changes)
    except EditRefused as exc:
        raise EditProblem(STATUS[exc.refusal], exc.refusal, exc.problems) from None


def send(settings: Settings, records: DeadLetterRecords, identity: Identity, draft: Draft) -> Edited:
    """Send a checked edit's copy with confirms (EditProblem saying why not); logged."""
    letter_id = draft.letter.summary.id
    try:
        with ReplayPublisher(from_settings(settings, heartbeat=0), log=log) as publisher:
            edited = use_cases.edit(records, identity.name, draft, publisher)
    except EditRefused as exc:
        raise EditProblem(STATUS[exc.refusal], exc.refusal, exc.problems) from None
    except DeadLetterError as exc:
        raise EditProblem(503, "not_sent", [f"{exc}; #{letter_id} is unchanged"]) from None
    log.info(
        "console.action",
        action="edit",
        user=identity.name,
        role=identity.role,
        via=identity.via,
        operation_id=edited.operation_id,
        selection=f"#{letter_id}",
        message_id=edited.message_id,
    )
    return edited


def form_changes(
    original: dict[str, Any], names: Sequence[str], values: Sequence[str]
) -> dict[str, str | None]:
    """The editor's header rows as changes to the letter's editable headers: a row whose value
    differs sets it, a header left out or emptied is removed, one as it was is left alone."""
    rows = {name.strip(): value for name, value in zip(names, values, strict=False) if name.strip()}
    changes: dict[str, str | None] = {
        name: value or None for name, value in rows.items() if str(original.get(name, "")) != value
    }
    changes.update({name: None for name in original if name not in rows})
    return changes


def digest(body: str, changes: dict[str, str | None]) -> str:
    """What was shown as the difference: sending needs the same body and changes."""
    return hashlib.sha256(
        json.dumps([body, sorted(changes.items())]).encode("utf-8", "surrogatepass")
    ).hexdigest()


def page(
    settings: Settings,
    letter: StoredLetter,
    *,
    body_text: str | None = None,
    rows: list[tuple[str, str]] | None = None,
    errors: Sequence[str] = (),
    shown: list[str] | None = None,
    previewed: str | None = None,
) -> dict[str, Any]:
    """The editor page's context: the body (pretty JSON at first), the header rows that may
    change, the locked ones, where the copy goes, and the refusal or the difference."""
    read = as_dead_letter(letter)
    to = destination(read, EditPolicy.of(settings).routes)
    return {
        "letter": letter,
        "body_text": pretty(letter.body) if body_text is None else body_text,
        "headers": rows
        if rows is not None
        else [(n, str(v)) for n, v in editable_headers(read.headers).items()],
        "locked": [(name, value) for name, value in letter.headers.items() if locked(name)],
        "to": to if isinstance(to, str) else target(to),
        "errors": list(errors),
        "diff": None if shown is None else diff_rows(shown),
        "previewed": previewed,
    }


def diff_rows(lines: Sequence[str]) -> list[tuple[str, str]]:
    """Diff lines with the class the page colours them by."""
    return [
        (
            "hunk"
            if line.startswith(("@@", "---", "+++"))
            else "add"
            if line.startswith("+")
            else "del"
            if line.startswith("-")
            else "same",
            line,
        )
        for line in lines
    ]


def edits_shown(records: DeadLetterRecords, letter_id: int) -> list[dict[str, Any]]:
    """The letter's confirmed edits, each with its before-and-after difference, for its page."""
    return [{"edit": record, "diff": diff_rows(record_diff(record))} for record in records.edits(letter_id)]
