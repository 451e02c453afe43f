"""Edit and retry: a dead letter's JSON body and the headers that are not ours, changed by an
operator and sent back to the worker as a copy under a new message id, with guardrails.

Written once for `renewals dlq edit`, the console's editor and its API. Off unless
RENEWALS_DLQ_EDIT_ENABLED, and only for the event types RENEWALS_DLQ_EDIT_TYPES lists. Two
steps, so that a person sees what will change before anything is sent:

- `draft` checks everything that can be checked without the broker (`guardrails`): the switch,
  the type, that the letter is still new, that no locked header changes, and the edited body
  against the event's model (every problem, with its field path). It changes nothing.
- `publish` holds the letter (compare-and-set: still new, and nobody else replaying or editing
  it; otherwise it says who did what), publishes the copy with publisher confirms through the
  replay publisher, and only when the broker confirms marks the original replayed, with an
  `edited` history entry, the before and after, and one audit row. A copy the broker does not
  take leaves the letter as it was (the audit says why).

The copy carries REPLAY_OF_LETTER (the letter's id), REPLAY_OPERATION (the edit's operation
id) and EDITED_FROM_MESSAGE_ID (the original's message id), so a replay's outcome tracking
covers edits too.
"""

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from worker.dead_letters.edit_diff import diff
from worker.dead_letters.guardrails import (
    DISABLED,
    EditPolicy,
    EditRefused,
    changed_headers,
    editable_headers,
    refusal,
    validation_problems,
)
from worker.dead_letters.model import EditRecord, HistoryEntry, StoredLetter
from worker.dead_letters.queue import ReplayRefused
from worker.dead_letters.records import DeadLetterRecords, LetterMoved
from worker.dead_letters.replays import Republisher, as_dead_letter
from worker.dead_letters.routing import destination, target
from worker.messaging import EDITED_FROM_MESSAGE_ID, REPLAY_OF_LETTER, REPLAY_OPERATION

LEASE = 60.0  # seconds an edit holds its letter at most (a confirm waits 15)


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
    refused = refusal(policy, letter)
    if refused is not None:
        raise EditRefused(refused[0], [refused[1]])
    read = as_dead_letter(letter)
    to = destination(read, policy.routes)
    if isinstance(to, str):
        raise EditRefused("not_allowed", [f"dead letter #{letter_id} cannot be sent back: {to}"])
    headers = changed_headers(read, header_changes or {})
    problems = validation_problems(letter, body, policy.max_future)
    if problems:
        raise EditRefused("invalid", problems)
    return Draft(letter, bytes(body), headers, to)


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
