"""Edit and retry in the console, for its editor page and its API alike: the request, the one
use case (`worker.dead_letters.actions.draft_edit` and `edit`, as `renewals dlq edit` runs
them) with a replay publisher of the console's settings, and each refusal's HTTP status."""

import json
from typing import Annotated, Any

from pydantic import BaseModel, Field

from worker.broker.endpoints import from_settings
from worker.console.identity import Identity
from worker.dead_letters import DeadLetterError, ReplayPublisher
from worker.dead_letters import actions as use_cases
from worker.dead_letters.editing import (
    MAX_HEADER_NAME_BYTES,
    MAX_HEADER_VALUE_CHARS,
    Edited,
    EditPolicy,
    EditRefused,
    Refusal,
)
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
    policy = EditPolicy.of(settings)
    try:
        draft = use_cases.draft_edit(records, policy, letter_id, request.body_bytes(), request.headers)
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
