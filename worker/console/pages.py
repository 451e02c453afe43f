"""The console's pages that read: groups, letters, a letter, replays and their progress, the
owner lookup, the audit and the health strip. Roles are checked by the same dependencies as the
API."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import ValidationError
from starlette.datastructures import ImmutableMultiDict

from worker.console import actions, shapes
from worker.console.filters import letter_filters
from worker.console.guard import console_of, require
from worker.console.health import health
from worker.console.identity import Identity
from worker.console.params import Blank, LetterId, ReplayId, RowId, Text, one_line
from worker.console.render import pretty_body, render
from worker.dead_letters import actions as use_cases
from worker.dead_letters.model import STATUSES
from worker.dead_letters.records import UnknownOperation
from worker.logs import get_logger
from worker.tools.owners import described

router = APIRouter(include_in_schema=False)
log = get_logger("worker.console")

Viewer = Annotated[Identity, Depends(require("viewer"))]
Operator = Annotated[Identity, Depends(require("operator"))]
Filters = Annotated[actions.Selection, Depends(letter_filters)]
After = Annotated[RowId | None, Blank, Query()]
Name = Annotated[Text | None, Blank, Query()]
PAGE_SIZE = 50


@router.get("/")
def groups_page(request: Request, _: Viewer) -> Response:
    groups = console_of(request).records().groups(hours=24)
    rows = [{"group": g, "trend": shapes.trend(g.trend)} for g in groups]
    return render(request, "groups.html", {"rows": rows})


@router.get("/letters")
def letters_page(request: Request, _: Viewer, selection: Filters, after: After = None) -> Response:
    records = console_of(request).records()
    page = records.page(selection.letter_filter(), after=after, limit=PAGE_SIZE, newest_first=True)
    return render(
        request,
        "letters.html",
        {
            "selection": selection,
            "letters": page.letters,
            "next_after": page.next_after,
            "query": _query(selection),
            "statuses": STATUSES,
            "local": lambda value: "" if value is None else _local(value),
        },
    )


@router.get("/letters/{letter_id}")
def letter_page(request: Request, _: Viewer, letter_id: LetterId) -> Response:
    stored = console_of(request).records().get(letter_id)
    if stored is None:
        raise HTTPException(404, f"no dead letter {letter_id}")
    return render(request, "letter.html", {"letter": stored, "body": pretty_body(stored.body)})


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
    found = actions.owner(console_of(request).store(), partner, client) if partner else None
    context = {"partner": partner, "client": client, "described": found and described(found)}
    return render(request, "owners.html", context)


@router.get("/audit")
def audit_page(request: Request, _: Viewer) -> Response:
    return render(
        request, "audit.html", {"entries": use_cases.audit(console_of(request).records(), limit=200)}
    )


@router.get("/health")
def health_strip(request: Request, _: Viewer) -> Response:
    console = console_of(request)
    found = health(console.settings, console.store, console.broker_figures)
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
