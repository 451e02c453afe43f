"""Dead-letter records built directly, for the store's contract tests, the replay tests and the
benchmark (which put thousands of letters in a store without a broker)."""

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from worker.dead_letters.model import LetterSummary, NewLetter, StoredLetter

_numbers = itertools.count(1)
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def new_letter(
    *,
    event_id: str | None = None,
    event_type: str = "RenewalApproaching",
    reason: str = "no_recipient",
    detail: str = "owner is 'platform', no decision maker is known and no partner contact is set",
    failed_at: datetime | None = T0,
    replays: int = 0,
    headers: dict[str, Any] | None = None,
    body: bytes | None = None,
) -> NewLetter:
    """One letter as the worker's drain reads it; each call a different letter unless the
    same event id and failure time are given."""
    number = next(_numbers)
    event_id = event_id or f"evt-{number}"
    body = body if body is not None else json.dumps({"id": event_id, "type": event_type, "data": {}}).encode()
    failed = None if failed_at is None else failed_at.isoformat(timespec="milliseconds")
    return NewLetter(
        body=body,
        properties={"content_type": "application/json", "message_id": event_id, "delivery_mode": 2},
        headers={
            "x-error-reason": reason,
            "x-error-detail": detail,
            **({"x-failed-at": failed} if failed else {}),
            "x-replay-count": replays,
            "x-attempts": 1,
            **(headers or {}),
        },
        reason=reason,
        detail=detail,
        failed_at=failed_at,
        attempts=1,
        replays=replays,
        event_id=event_id,
        event_type=event_type,
        message_id=event_id,
        origin=("renewals.events", "renewal.approaching"),
    )


def spread(count: int, *, start: datetime = T0, every: timedelta = timedelta(seconds=1)) -> list[NewLetter]:
    """`count` letters of three reasons and varied details, one `every` apart."""
    kinds = [
        ("no_recipient", "RenewalApproaching", "owner is 'platform', no decision maker for client 'c-{n}'"),
        ("invalid_payload", "OwnerChanged", "data.owner: Input should be 'platform' or 'partner' (got {n})"),
        ("retries_exhausted", "RenewalApproaching", "bug: KeyError: 'c-{n}' at handlers/rules.py:{n}"),
    ]
    letters = []
    for number in range(count):
        reason, event_type, detail = kinds[number % len(kinds)]
        letters.append(
            new_letter(
                event_id=f"evt-{number:06d}",
                event_type=event_type,
                reason=reason,
                detail=detail.format(n=number),
                failed_at=start + every * number,
            )
        )
    return letters


def stored(
    body: bytes, properties: dict[str, Any], headers: dict[str, Any], *, number: int = 1
) -> StoredLetter:
    """A letter as the store hands it out, built from a message's parts (for the output's unit
    tests, which need no store)."""
    return StoredLetter(
        summary=LetterSummary(
            id=number,
            status="new",
            event_id=None,
            event_type=None,
            reason="unknown",
            detail="",
            group="0" * 16,
            failed_at=None,
            received_at=T0,
            attempts=None,
            replays=0,
            message_id=None,
            origin=None,
            resolved_at=None,
            body_size=len(body),
        ),
        body=body,
        properties=properties,
        headers=headers,
        trace_parent=None,
        body_truncated=False,
        body_sha256=None,
    )
