"""The console's pages: groups, letters, a letter, replays (preview, confirm, progress, cancel),
archive and purge, the owner lookup, the audit and the health strip. Roles are checked by the
same dependencies as the API; forms carry the CSRF token."""

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict

from worker.console import actions, shapes
from worker.console.access import Identity
from worker.console.guard import Denied, authenticate_async, check_not_forged, console_of, require
from worker.console.health import health
from worker.console.render import pretty_body, render
from worker.logs import get_logger
from worker.store.dead_letters import OperationBusy, UnknownOperation
from worker.store.letters import STATUSES
from worker.tools.dead_letters import Routes
from worker.tools.owners import described

router = APIRouter(include_in_schema=False)
log = get_logger("worker.console")

Viewer = Annotated[Identity, Depends(require("viewer"))]
Operator = Annotated[Identity, Depends(require("operator"))]
PAGE_SIZE = 50


@router.get("/login")
def login_page(request: Request) -> Response:
    return render(request, "login.html", {"error": None})


@router.post("/login")
async def login(
    request: Request, username: Annotated[str, Form()], password: Annotated[str, Form()]
) -> Response:
    await check_not_forged(request, None)
    users = console_of(request).access.users
    identity = await run_in_threadpool(users.refresh().verify, username, password) if users else None
    if identity is None:
        log.warning("console.sign_in_refused", user=username)
        return render(request, "login.html", {"error": "wrong user name or password"}, status_code=401)
    log.info("console.signed_in", user=identity.name, role=identity.role)
    request.state.session = console_of(request).sessions.fresh(identity)  # a new id: no fixation
    request.state.session_changed = True
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    await check_not_forged(request, await authenticate_async(request))
    request.state.session = console_of(request).sessions.fresh()
    request.state.session_changed = True
    return RedirectResponse("/login", status_code=303)


@router.get("/")
def groups_page(request: Request, _: Viewer) -> Response:
    groups = console_of(request).records().groups(hours=24)
    rows = [{"group": g, "trend": shapes.trend(g.trend)} for g in groups]
    return render(request, "groups.html", {"rows": rows})


@router.get("/letters")
def letters_page(request: Request, _: Viewer) -> Response:
    selection = _selection(request.query_params)
    after = request.query_params.get("after")
    page = (
        console_of(request)
        .records()
        .page(
            selection.letter_filter(),
            after=int(after) if after and after.isdigit() else None,
            limit=PAGE_SIZE,
            newest_first=True,
        )
    )
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
def letter_page(request: Request, _: Viewer, letter_id: int) -> Response:
    stored = console_of(request).records().get(letter_id)
    if stored is None:
        raise HTTPException(404, f"no dead letter {letter_id}")
    return render(request, "letter.html", {"letter": stored, "body": pretty_body(stored.body)})


@router.post("/letters/{letter_id}/notes")
def add_note(request: Request, who: Operator, letter_id: int, text: Annotated[str, Form()]) -> Response:
    try:
        actions.note(console_of(request).records(), who, letter_id, actions.NoteRequest(text=text).text)
    except KeyError:
        raise HTTPException(404, f"no dead letter {letter_id}") from None
    return RedirectResponse(f"/letters/{letter_id}", status_code=303)


@router.post("/actions/preview")
async def preview(request: Request, _: Operator) -> Response:
    form = await request.form()
    action, selection, rate = _action(form)
    records = console_of(request).records()
    try:
        selection.for_action()
        if action == "replay":
            replay = actions.ReplayRequest(selection=selection, dry_run=True, rate=rate)
            count, plans = actions.preview(records, replay, Routes.of(console_of(request).settings))
        else:
            count, plans = records.count(selection.letter_filter()), []
    except actions.RefusedAction as exc:
        return render(request, "refused.html", {"reason": str(exc)}, status_code=422)
    context = {
        "action": action,
        "selection": selection,
        "rate": rate or console_of(request).settings.replay_rate,
        "count": count,
        "plans": plans,
    }
    return render(request, "preview.html", context)


@router.post("/actions/confirm")
async def confirm(request: Request, who: Operator) -> Response:
    form = await request.form()
    action, selection, rate = _action(form)
    console = console_of(request)
    records = console.records()
    try:
        if action == "replay":
            operation = console.runner.start(
                records,
                who,
                selection.for_action(),
                rate=rate or console.settings.replay_rate,
                force=False,
                to_original=False,
                max_replays=actions.DEFAULT_MAX_REPLAYS,
            )
            actions.started(who, operation)
            return RedirectResponse(f"/replays/{operation.id}", status_code=303)
        done = (actions.archive if action == "archive" else actions.purge)(records, who, selection)
    except actions.RefusedAction as exc:
        return render(request, "refused.html", {"reason": str(exc)}, status_code=422)
    return render(request, "done.html", {"action": action, "done": done})


@router.get("/replays")
def replays_page(request: Request, _: Viewer) -> Response:
    return render(request, "replays.html", {"operations": console_of(request).records().operations()})


@router.get("/replays/{operation_id}")
def replay_page(request: Request, _: Viewer, operation_id: str) -> Response:
    return render(request, "replay.html", {"operation": _operation(request, operation_id)})


@router.get("/replays/{operation_id}/progress")
def replay_progress(request: Request, _: Viewer, operation_id: str) -> Response:
    return render(request, "progress.html", {"operation": _operation(request, operation_id)})


@router.post("/replays/{operation_id}/cancel")
def cancel_replay(request: Request, who: Operator, operation_id: str) -> Response:
    try:
        operation = console_of(request).records().request_cancel(operation_id, actor=who.name)
    except UnknownOperation:
        raise HTTPException(404, f"no replay {operation_id}") from None
    actions.cancelled(who, operation)
    return RedirectResponse(f"/replays/{operation_id}", status_code=303)


@router.post("/replays/{operation_id}/resume")
def resume_replay(request: Request, who: Operator, operation_id: str) -> Response:
    console = console_of(request)
    try:
        operation = console.runner.resume(console.records(), who, operation_id)
    except UnknownOperation:
        raise HTTPException(404, f"no replay {operation_id}") from None
    except OperationBusy as exc:
        return render(request, "refused.html", {"reason": str(exc)}, status_code=409)
    actions.resumed(who, operation)
    return RedirectResponse(f"/replays/{operation_id}", status_code=303)


@router.get("/owners")
def owners_page(
    request: Request, _: Viewer, partner: str | None = None, client: str | None = None
) -> Response:
    context: dict[str, Any] = {"partner": partner, "client": client, "described": None, "error": None}
    if partner:
        try:
            context["described"] = described(actions.owner(console_of(request).store(), partner, client))
        except Exception as exc:  # the store is down, say: one line on the page
            context["error"] = f"cannot read the store: {type(exc).__name__}"
    return render(request, "owners.html", context)


@router.get("/audit")
def audit_page(request: Request, _: Viewer) -> Response:
    return render(request, "audit.html", {"entries": console_of(request).records().audit_log(limit=200)})


@router.get("/health")
def health_strip(request: Request, _: Viewer) -> Response:
    console = console_of(request)
    found = health(console.settings, console.store())
    last_hour = actions.last_hour(console.records()) if found.store_error is None else None
    return render(request, "health.html", {"health": found, "dead_letters_last_hour": last_hour})


def _operation(request: Request, operation_id: str) -> Any:
    try:
        return console_of(request).records().operation(operation_id)
    except UnknownOperation:
        raise HTTPException(404, f"no replay {operation_id}") from None


def _selection(values: ImmutableMultiDict[str, Any]) -> actions.Selection:
    """Filters from a query string or form: repeatable fields, blanks ignored."""

    def many(name: str) -> list[str]:
        return [v.strip() for v in values.getlist(name) if isinstance(v, str) and v.strip()]

    statuses = [s for s in many("status") if s in STATUSES] or ["new"]
    return actions.Selection.model_validate(
        {
            "reason": many("reason"),
            "type": many("type"),
            "id": many("id"),
            "group": many("group"),
            "letter": [int(v) for v in many("letter") if v.isdigit()],
            "text": next(iter(many("text")), None),
            "since": next(iter(many("since")), None),
            "until": next(iter(many("until")), None),
            "status": statuses,
            "all": values.get("all") == "true",
        }
    )


def _action(form: ImmutableMultiDict[str, Any]) -> tuple[str, actions.Selection, float | None]:
    action = form.get("action")
    if action not in ("replay", "archive", "purge"):
        raise Denied(403, "unknown action")
    selection = _selection(form)
    if form.get("scope") == "checked":
        selection = actions.Selection(letter=selection.letter, status=selection.status)
    elif form.get("scope") == "matching":
        selection = selection.model_copy(update={"letter": []})
    rate_text = str(form.get("rate") or "").strip()
    try:
        rate = float(rate_text) if rate_text else None
    except ValueError:
        rate = None
    return str(action), selection, rate if rate is None or rate > 0 else None


def _local(value: datetime) -> str:
    """A time as a datetime-local field shows it (UTC, to the minute)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


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
