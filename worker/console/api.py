"""The JSON API under /api/: every action the pages offer, for scripts. HTTP Basic as a console
user (or the session, for the pages' own calls); viewers read, operators act."""

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from worker.console import actions, editor, shapes
from worker.console.filters import letter_filters, reminder_filters
from worker.console.guard import console_of, require
from worker.console.history import received_first
from worker.console.identity import Identity
from worker.console.params import Blank, LetterId, ReplayId, RowId, Text
from worker.dead_letters import InvalidRate, Routes
from worker.dead_letters import actions as use_cases
from worker.dead_letters.edit_diff import edit_document
from worker.dead_letters.model import Status
from worker.dead_letters.records import OperationBusy, UnknownOperation
from worker.ledger import questions
from worker.ledger.words import change_dict, reminder_dict

router = APIRouter(prefix="/api", tags=["api"])

Viewer = Annotated[Identity, Depends(require("viewer"))]
Operator = Annotated[Identity, Depends(require("operator"))]
Filters = Annotated[actions.Selection, Depends(letter_filters)]
Reminders = Annotated[questions.ReminderQuery, Depends(reminder_filters)]


@router.get("/health", summary="Readiness and the figures an operator watches")
def get_health(request: Request, _: Viewer) -> dict[str, Any]:
    console = console_of(request)
    return {
        **console.health().as_dict(),
        "dead_letters_last_hour": _last_hour(request),
        "sign_in_error": console.access.users.problem if console.access.users else None,
    }


@router.get("/dead-letters", summary="A page of dead letters matching the filters")
def list_letters(
    request: Request,
    _: Viewer,
    selection: Filters,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    after: Annotated[RowId | None, Blank, Query(description="the previous page's next_after")] = None,
    order: Literal["newest", "oldest"] = "newest",
) -> dict[str, Any]:
    records = console_of(request).records()
    chosen = selection.letter_filter()
    page = records.page(chosen, after=after, limit=limit, newest_first=order == "newest")
    return {
        "letters": [shapes.summary(s) for s in page.letters],
        "next_after": page.next_after,
        "total": records.count(chosen),  # every letter matching, on all pages
    }


@router.get("/dead-letters/{letter_id}", summary="One dead letter in full, with history and notes")
def get_letter(request: Request, _: Viewer, letter_id: LetterId) -> dict[str, Any]:
    stored = console_of(request).records().get(letter_id)
    if stored is None:
        raise HTTPException(404, f"no dead letter {letter_id}")
    return {**shapes.letter(stored), "history": [shapes.plain(asdict(h)) for h in received_first(stored)]}


@router.post("/dead-letters/{letter_id}/notes", summary="Add a triage note", status_code=201)
def add_note(
    request: Request, who: Operator, letter_id: LetterId, body: actions.NoteRequest
) -> dict[str, Any]:
    try:
        return actions.note(console_of(request).records(), who, letter_id, body.text)
    except KeyError:
        raise HTTPException(404, f"no dead letter {letter_id}") from None


@router.post("/letters/{letter_id}/edit", summary="Edit a letter and retry it as a copy (when enabled)")
def edit_letter(
    request: Request, who: Operator, letter_id: LetterId, body: editor.EditRequest
) -> dict[str, Any]:
    console = console_of(request)
    try:
        return editor.edit(console.settings, console.records(), who, letter_id, body).as_dict()
    except editor.EditProblem as exc:
        raise HTTPException(exc.status, exc.detail()) from None


@router.get("/letters/{letter_id}/edits", summary="A letter's confirmed edits, before and after, whole")
def letter_edits(request: Request, _: Viewer, letter_id: LetterId) -> dict[str, Any]:
    records = console_of(request).records()
    if records.get(letter_id) is None:
        raise HTTPException(404, f"no dead letter {letter_id}")
    return {"edits": [edit_document(record) for record in records.edits(letter_id)]}


@router.get("/groups", summary="Groups of letters by fingerprint, largest first, with trends")
def list_groups(
    request: Request,
    _: Viewer,
    status: Annotated[list[Status], Query()] = ["new"],  # noqa: B006
    hours: Annotated[int, Query(ge=1, le=24 * 14)] = 24,
) -> dict[str, Any]:
    selection = actions.Selection(status=status).letter_filter()
    groups = console_of(request).records().groups(selection, hours=hours)
    return {"groups": [shapes.group(g) for g in groups]}


@router.post("/replays", summary="Replay a selection (or, with dry_run, say what would happen)")
def replay(
    request: Request, who: Operator, body: actions.ReplayRequest, response: Response
) -> dict[str, Any]:
    console = console_of(request)
    records = console.records()
    routes = Routes.of(console.settings, to_original=body.to_original)
    try:
        if body.dry_run:
            count, plans = actions.preview(records, body, routes)
            return {"dry_run": True, "selected": count, "plans": [shapes.plan(p) for p in plans]}
        unconsumed = None if body.confirm_no_consumer else console.unconsumed()
        if unconsumed is not None:
            raise HTTPException(409, f"{unconsumed}; to replay anyway, send confirm_no_consumer: true")
        operation = console.runner.start(
            records,
            who,
            body.selection.for_action(),
            rate=body.rate or console.settings.replay_rate,
            force=body.force,
            to_original=body.to_original,
            max_replays=actions.DEFAULT_MAX_REPLAYS,
            at=body.at,
            canary=body.canary or 0,
            canary_timeout=body.canary_timeout,
        )
    except actions.RefusedAction as exc:
        raise HTTPException(422, str(exc)) from None
    actions.started(who, operation)
    response.status_code = 202
    return shapes.operation(operation)


@router.get("/replays", summary="The latest replay operations")
def list_replays(request: Request, _: Viewer) -> dict[str, Any]:
    return {"replays": [shapes.operation(o) for o in console_of(request).records().operations()]}


@router.get("/replays/{operation_id}", summary="A replay's progress")
def get_replay(request: Request, _: Viewer, operation_id: ReplayId) -> dict[str, Any]:
    try:
        records = console_of(request).records()
        return {**shapes.operation(records.operation(operation_id)), **shapes.fates(records, operation_id)}
    except UnknownOperation:
        raise HTTPException(404, f"no replay {operation_id}") from None


@router.delete("/replays/{operation_id}", summary="Cancel a running replay")
def cancel_replay(request: Request, who: Operator, operation_id: ReplayId) -> dict[str, Any]:
    try:
        operation = use_cases.cancel_replay(console_of(request).records(), who.name, operation_id)
    except UnknownOperation:
        raise HTTPException(404, f"no replay {operation_id}") from None
    actions.cancelled(who, operation)
    return shapes.operation(operation)


@router.post("/replays/{operation_id}/resume", summary="Resume a cancelled or interrupted replay")
def resume_replay(request: Request, who: Operator, operation_id: ReplayId) -> dict[str, Any]:
    console = console_of(request)
    try:
        operation = console.runner.resume(console.records(), who, operation_id)
    except UnknownOperation:
        raise HTTPException(404, f"no replay {operation_id}") from None
    except OperationBusy as exc:
        raise HTTPException(409, str(exc)) from None
    except InvalidRate as exc:
        raise HTTPException(422, f"replay {operation_id} cannot be resumed: {exc}") from None
    actions.resumed(who, operation)
    return shapes.operation(operation)


@router.post("/archive", summary="Archive the selected unresolved letters")
def archive(request: Request, who: Operator, selection: actions.Selection) -> dict[str, Any]:
    try:
        return actions.archive(console_of(request).records(), who, selection)
    except actions.RefusedAction as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("/purge", summary="Purge the selected unresolved letters")
def purge(request: Request, who: Operator, selection: actions.Selection) -> dict[str, Any]:
    try:
        return actions.purge(console_of(request).records(), who, selection)
    except actions.RefusedAction as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/audit", summary="The latest audited actions, newest first")
def audit(request: Request, _: Viewer, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    return {"audit": [shapes.audit(e) for e in use_cases.audit(console_of(request).records(), limit=limit)]}


@router.get("/owners", summary="Who owns renewal communication: what `renewals owners show` says")
def owners(
    request: Request, _: Viewer, partner: Text, client: Annotated[Text | None, Blank] = None
) -> dict[str, Any]:
    return actions.owner(console_of(request).store(), partner, client).as_dict()


@router.get("/reminders", summary="The ledger's reminders matching the filters, newest first")
def list_reminders(
    request: Request,
    _: Viewer,
    query: Reminders,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    before: Annotated[RowId | None, Blank, Query(description="the previous page's next_before")] = None,
) -> dict[str, Any]:
    page = questions.reminders(console_of(request).store(), query, before=before, limit=limit)
    return {"reminders": [reminder_dict(row) for row in page.reminders], "next_before": page.next_before}


@router.get(
    "/owners/{partner}/history", summary="Who changed the owner when: what `renewals owners history` says"
)
def owner_history(
    request: Request,
    _: Viewer,
    partner: Annotated[Text, Path(description="partner id")],
    client: Annotated[
        Text | None, Blank, Query(description="its overrides and the partner-wide changes")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    changes = questions.owner_history(console_of(request).store(), partner, client, limit=limit)
    return {"partner_id": partner, "client_id": client, "changes": [change_dict(c) for c in changes]}


def _last_hour(request: Request) -> int | None:
    return actions.last_hour(console_of(request).records)
