"""The console's pages that read: groups, letters, a letter, replays and their progress, the
owner lookup with its history, the reminder ledger, the audit and the health strip. Roles are
checked by the same dependencies as the API."""

from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import ValidationError
from starlette.datastructures import ImmutableMultiDict

from worker.console import actions, charts, editor
from worker.console.filters import letter_filters, reminder_filters
from worker.console.guard import console_of, require
from worker.console.history import received_first
from worker.console.identity import Identity
from worker.console.params import Blank, LetterId, ReplayId, RowId, Text, one_line
from worker.console.render import pretty_body, render
from worker.dead_letters import actions as use_cases
from worker.dead_letters.guardrails import EditPolicy, editable
from worker.dead_letters.model import STATUSES
from worker.dead_letters.records import UnknownOperation
from worker.ledger import questions
from worker.ledger.words import change_dict, day, delivery, reminder_dict
from worker.logs import get_logger
from worker.tools.owners import described

router = APIRouter(include_in_schema=False)


log = get_logger("worker.console")

Viewer = Annotated[Identity, Depends(require("viewer"))]
Operator = Annotated[Identity, Depends(require("operator"))]
Filters = Annotated[actions.Selection, Depends(letter_filters)]
Reminders = Annotated[questions.ReminderQuery, Depends(reminder_filters)]
After = Annotated[RowId | None, Blank, Query()]
Name = Annotated[Text | None, Blank, Query()]
PAGE_SIZE = 50
AUDIT_PAGE = 200


@router.get("/")
def groups_page(request: Request, _: Viewer) -> Response:
    records = console_of(request).records()
    groups = records.groups(hours=24)
    letters = records.count()
    rows = [{"group": g, "trend": charts.trend(g.trend)} for g in groups]
    return render(request, "groups.html", {"rows": rows, "letters": letters})


@router.get("/letters")
def letters_page(request: Request, _: Viewer, selection: Filters, after: After = None) -> Response:
    records = console_of(request).records()
    chosen = selection.letter_filter()
    with console_of(request).store().reading():  # the page and its totals agree
        page = records.page(chosen, after=after, limit=PAGE_SIZE, newest_first=True)
        total = records.count(chosen)
        # Newest first, a page `after` N starts after the letters from N up: those not before it.
        skipped = 0 if after is None else total - records.count(replace(chosen, up_to=after - 1))
    query = _query(selection)
    return render(
        request,
        "letters.html",
        {
            "selection": selection,
            "letters": page.letters,
            "next_after": page.next_after,
            "total": total,
            "first": skipped + 1,
            "last": skipped + len(page.letters),
            "query": query,
            "here": "/letters?" + urlencode(query + ([("after", str(after))] if after else [])),
            "statuses": STATUSES,
            "local": lambda value: "" if value is None else _local(value),
        },
    )


@router.get("/letters/{letter_id}")
def letter_page(request: Request, _: Viewer, letter_id: LetterId, selection: Filters) -> Response:
    console = console_of(request)
    records = console.records()
    stored = records.get(letter_id)
    if stored is None:
        raise HTTPException(404, f"no dead letter {letter_id}")
    chosen = selection.letter_filter()
    # In the list's order (newest first): the previous letter is the next newer one.
    newer = records.page(chosen, after=letter_id, limit=1).letters
    older = records.page(chosen, after=letter_id, limit=1, newest_first=True).letters
    context = {
        "letter": stored,
        "body": pretty_body(stored.body),
        "history": received_first(stored),
        "previous": newer[0].id if newer else None,
        "next": older[0].id if older else None,
        "query": _query(selection),
        "edit_refusal": editable(EditPolicy.of(console.settings), stored),  # None: it can be edited
        "edits": editor.edits_shown(records, letter_id),
    }
    return render(request, "letter.html", context)


@router.get("/letters/{letter_id}/edit")
def edit_page(request: Request, _: Operator, letter_id: LetterId) -> Response:
    """The editor of edit and retry (operators; when RENEWALS_DLQ_EDIT_ENABLED and the type is
    listed); its form posts to forms.edit_letter."""
    console = console_of(request)
    stored = console.records().get(letter_id)
    if stored is None:
        raise HTTPException(404, f"no dead letter {letter_id}")
    refusal = editable(EditPolicy.of(console.settings), stored)
    if refusal is not None:
        status = 409 if stored.summary.status != "new" else 403
        return render(request, "problem.html", {"reason": refusal}, status_code=status)
    return render(request, "edit.html", editor.page(console.settings, stored))


@router.get("/replays")
def replays_page(request: Request, _: Viewer) -> Response:
    return render(request, "replays.html", {"operations": console_of(request).records().operations()})


@router.get("/replays/{operation_id}")
def replay_page(request: Request, _: Viewer, operation_id: ReplayId) -> Response:
    return render(request, "replay.html", _replay(request, operation_id))


@router.get("/replays/{operation_id}/progress")
def replay_progress(request: Request, _: Viewer, operation_id: ReplayId) -> Response:
    return render(request, "progress.html", _replay(request, operation_id))


def _replay(request: Request, operation_id: str) -> dict[str, Any]:
    """A replay with its latest letters that failed again (linked to the new letters)."""
    operation = _operation(request, operation_id)
    return {
        "operation": operation,
        "failed_again": console_of(request).records().fated(operation_id, "failed_again"),
    }


@router.get("/owners")
def owners_page(request: Request, _: Viewer, partner: Name = None, client: Name = None) -> Response:
    store = console_of(request).store()
    found = actions.owner(store, partner, client) if partner else None
    history = questions.owner_history(store, partner, client or None) if partner else []
    context = {
        "partner": partner,
        "client": client,
        "described": found and described(found),
        "history": [change_dict(change) for change in history],
    }
    return render(request, "owners.html", context)


@router.get("/reminders")
def reminders_page(request: Request, _: Viewer, query: Reminders, before: After = None) -> Response:
    """The ledger's reminders matching the search, newest first, a page at a time."""
    page = questions.reminders(console_of(request).store(), query, before=before, limit=PAGE_SIZE)
    rows = [
        {**reminder_dict(row), "handled": day(row.handled_at_us), "delivery": delivery(row)}
        for row in page.reminders
    ]
    return render(
        request,
        "reminders.html",
        {
            "search": query,
            "reminders": rows,
            "next_before": page.next_before,
            "pairs": _reminder_pairs(query),
            "local": lambda value: "" if value is None else _local(value),
        },
    )


@router.get("/audit")
def audit_page(request: Request, _: Viewer) -> Response:
    entries = use_cases.audit(console_of(request).records(), limit=AUDIT_PAGE)
    return render(request, "audit.html", {"entries": entries, "limit": AUDIT_PAGE})


@router.get("/health")
def health_strip(request: Request, _: Viewer) -> Response:
    console = console_of(request)
    found = console.health()
    last_hour = actions.last_hour(console.records) if found.store_error is None else None
    return render(request, "health.html", {"health": found, "dead_letters_last_hour": last_hour})


def _operation(request: Request, operation_id: str) -> Any:
    try:
        return console_of(request).records().operation(operation_id)
    except UnknownOperation:
        raise HTTPException(404, f"no replay {operation_id}") from None


def selection_of(values: ImmutableMultiDict[str, Any]) -> actions.Selection:
    """Filters from a form, of the same types as the query's (blanks ignored); a value of the
    wrong form is a 422 that says which."""

    def many(name: str) -> list[Any]:
        return [v for v in values.getlist(name) if isinstance(v, str)]

    try:
        return actions.Selection.model_validate(
            {
                **{name: many(name) for name in ("reason", "type", "id", "group", "letter")},
                **{name: values.get(name) for name in ("text", "since", "until") if name in values},
                "status": many("status") or ["new"],
                "all": values.get("all") == "true",
            }
        )
    except ValidationError as exc:
        raise HTTPException(422, one_line(exc.errors())) from None


def _local(value: datetime) -> str:
    """A time as a datetime-local field shows it (UTC, to the minute); one UTC cannot hold
    (9999-12-31T23:59-23:59) keeps its own offset, so the next page's link still says it."""
    try:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")
    except OverflowError:
        return value.isoformat(timespec="minutes")


def _reminder_pairs(query: questions.ReminderQuery) -> list[tuple[str, str]]:
    """The Reminders search as query pairs, for the next page's link."""
    pairs = [
        (name, value)
        for name, value in (
            ("partner", query.partner_id),
            ("client", query.client_id),
            ("recipient", query.recipient),
        )
        if value
    ]
    return pairs + [
        (name, _local(value)) for name, value in (("since", query.since), ("until", query.until)) if value
    ]


def _query(selection: actions.Selection) -> list[tuple[str, str]]:
    """The selection as query pairs, for the next page's link."""
    pairs: list[tuple[str, str]] = [("status", s) for s in selection.status]
    for name in ("reason", "type", "id", "group"):
        pairs += [(name, v) for v in getattr(selection, name)]
    if selection.text:
        pairs.append(("text", selection.text))
    pairs += [
        (name, _local(getattr(selection, name))) for name in ("since", "until") if getattr(selection, name)
    ]
    return pairs
