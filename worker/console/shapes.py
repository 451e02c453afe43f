"""The records as JSON for the API (and as rows for the pages): plain values only; bytes are
text with undecodable bytes escaped, AMQP values of other types their string form."""

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.dead_letters import Plan, label
from worker.dead_letters.model import (
    AuditEntry,
    Group,
    HistoryEntry,
    LetterSummary,
    ReplayOperation,
    StoredLetter,
)
from worker.dead_letters.records import DeadLetterRecords


def plain(value: Any) -> Any:
    """Any AMQP value (or dataclass field) as JSON: bytes escaped, times ISO 8601."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in (sorted(value) if isinstance(value, set | frozenset) else value)]
    return value


def summary(letter: LetterSummary) -> dict[str, Any]:
    return plain(asdict(letter))  # type: ignore[no-any-return]  # plain() of a dict is a dict


def history(entry: HistoryEntry) -> dict[str, Any]:
    return plain(asdict(entry))  # type: ignore[no-any-return]  # as above


def letter(stored: StoredLetter) -> dict[str, Any]:
    return {
        **summary(stored.summary),
        "body": plain(stored.body),
        "body_truncated": stored.body_truncated,
        "body_sha256": stored.body_sha256,
        "properties": plain(stored.properties),
        "headers": plain(stored.headers),
        "trace_parent": stored.trace_parent,
        "problem": stored.problem,  # why its properties are missing, when they are
        "erased_by": None if stored.erasure is None else stored.erasure.operation_id,  # a tombstone
        "history": [history(entry) for entry in stored.history],
    }


def group(found: Group) -> dict[str, Any]:
    return plain(asdict(found))  # type: ignore[no-any-return]  # as above


def operation(found: ReplayOperation) -> dict[str, Any]:
    shaped: dict[str, Any] = plain({k: v for k, v in asdict(found).items() if k != "selection"})
    return {**shaped, "selection": found.selection.describe(), "done": found.done, "pending": found.pending}


def fates(records: DeadLetterRecords, operation_id: str) -> dict[str, Any]:
    """The replay's latest letters that failed again, each with the new letter it came back as."""
    return {
        "failed_again_letters": [
            {"letter": f.letter_id, "event_id": f.event_id, "new_letter": f.next_letter, "why": f.detail}
            for f in records.fated(operation_id, "failed_again")
        ]
    }


def audit(entry: AuditEntry) -> dict[str, Any]:
    return plain(asdict(entry))  # type: ignore[no-any-return]  # as above


def plan(found: Plan[Any]) -> dict[str, Any]:
    return {
        "letter": found.letter.position,
        "id": label(found.letter),
        "type": found.letter.type,
        "reason": found.letter.reason,
        "replays": found.letter.replay_count,
        "action": found.action,
        "to": None if found.to is None else list(found.to),
        "note": found.note,
    }
