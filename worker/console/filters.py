"""The filters of a list of dead letters as query parameters: one dependency, so the letters page
and `/api/dead-letters` read them alike, blanks (a form's empty fields) ignored, each value of
the types in `params`; and likewise the filters of the reminder ledger's list (`reminder_filters`)."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Query

from worker.console.actions import Selection
from worker.console.params import VALUES_MAX, Blank, Many, RowId, SearchText, Text
from worker.dead_letters.model import Status
from worker.ledger.questions import ReminderQuery


def _many(description: str) -> object:
    return Query(max_length=VALUES_MAX, description=f"{description} (repeatable)")


Reasons = Annotated[list[Text], Many, _many("failure reasons")]
Types = Annotated[list[Text], Many, _many("event types")]
EventIds = Annotated[list[Text], Many, _many("event ids")]
Groups = Annotated[list[Text], Many, _many("group fingerprints")]
Letters = Annotated[list[RowId], Many, _many("letter (row) ids")]
Statuses = Annotated[list[Status], Many, _many("statuses (default: new)")]
Search = Annotated[SearchText | None, Blank, Query(description="text in id, type, reason, detail or body")]
Since = Annotated[datetime | None, Blank, Query(description="failed at or after")]
Until = Annotated[datetime | None, Blank, Query(description="failed before")]


def letter_filters(
    reason: Reasons = [],  # noqa: B006  # FastAPI copies query defaults
    type: Types = [],  # noqa: B006  # the API's parameter names
    id: EventIds = [],  # noqa: B006
    group: Groups = [],  # noqa: B006
    letter: Letters = [],  # noqa: B006
    status: Statuses = ["new"],  # noqa: B006
    text: Search = None,
    since: Since = None,
    until: Until = None,
) -> Selection:
    """The selection the query names (unresolved letters when it names no status)."""
    return Selection(
        reason=reason,
        type=type,
        id=id,
        group=group,
        letter=letter,
        status=status or ["new"],
        text=text,
        since=since,
        until=until,
    )


Partner = Annotated[Text | None, Blank, Query(description="partner id")]
Client = Annotated[Text | None, Blank, Query(description="client id")]
Recipient = Annotated[Text | None, Blank, Query(description="the to or cc address, as written")]
HandledSince = Annotated[
    datetime | None, Blank, Query(description="handled at or after (UTC without a zone)")
]
HandledUntil = Annotated[datetime | None, Blank, Query(description="handled before (UTC without a zone)")]


def reminder_filters(
    partner: Partner = None,
    client: Client = None,
    recipient: Recipient = None,
    since: HandledSince = None,
    until: HandledUntil = None,
) -> ReminderQuery:
    """Which of the ledger's reminders the query names, for the Reminders page and `/api/reminders`
    alike (every reminder when it names none)."""
    return ReminderQuery(
        client_id=client,
        partner_id=partner,
        recipient=recipient,
        since=_utc(since),
        until=_utc(until),
    )


def _utc(value: datetime | None) -> datetime | None:
    """A time without a zone (a browser's datetime-local field) is UTC."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value
