"""The console's forms: sign in and out, notes, the preview and confirmation of a replay,
archive or purge, cancelling or resuming a replay, and edit and retry. Each needs the operator
role (signing in excepted) and the CSRF token, checked on the server."""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict

from worker.console import actions, editor
from worker.console.guard import (
    Denied,
    authenticate_async,
    check_not_forged,
    console_of,
    require,
    wrong_password,
)
from worker.console.identity import Identity
from worker.console.pages import selection_of
from worker.console.params import LetterId, NoteText, ReplayId
from worker.console.passwords import Throttled, check_password
from worker.console.render import render
from worker.dead_letters import InvalidRate, Routes, as_dead_letter, check_rate, parse_at
from worker.dead_letters import actions as use_cases
from worker.dead_letters.guardrails import editable_headers
from worker.dead_letters.records import OperationBusy, UnknownOperation
from worker.logs import get_logger

router = APIRouter(include_in_schema=False)
log = get_logger("worker.console")

Operator = Annotated[Identity, Depends(require("operator"))]
Note = Annotated[NoteText, Form()]


@router.get("/login")
def login_page(request: Request) -> Response:
    return render(request, "login.html", {"error": None})


@router.post("/login")
async def login(
    request: Request, username: Annotated[str, Form()], password: Annotated[str, Form()]
) -> Response:
    await check_not_forged(request, None)
    console = console_of(request)
    request.state.who = None  # the page below is drawn for nobody, whatever the old cookie says
    address = request.client.host if request.client else None
    try:
        identity = await check_password(console, address, username, password, "form")
    except Throttled as exc:
        page = render(request, "login.html", {"error": exc.reason}, status_code=429)
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    user = console.access.users.users.get(identity.name) if identity and console.access.users else None
    if user is None:
        return render(request, "login.html", {"error": wrong_password(console)}, status_code=401)
    log.info("console.signed_in", user=user.name, role=user.role)
    request.state.session = await run_in_threadpool(console.start_session, user)  # a new id: no fixation
    request.state.session_changed = True
    return RedirectResponse("/", status_code=303)


@router.post("/logout")
async def logout(request: Request) -> Response:
    """Sign out: every session of this user ends (on every browser), and this browser gets a new one."""
    who = await authenticate_async(request)
    await check_not_forged(request, who)
    console = console_of(request)
    if who is not None and who.via == "session":
        ended = await run_in_threadpool(console.end_sessions, who.name)
        log.info("console.signed_out", user=who.name, sessions=ended)
    request.state.session = console.sessions.fresh()
    request.state.session_changed = True
    return RedirectResponse("/login", status_code=303)


@router.post("/letters/{letter_id}/notes")
def add_note(request: Request, who: Operator, letter_id: LetterId, text: Note) -> Response:
    try:
        actions.note(console_of(request).records(), who, letter_id, text)
    except KeyError:
        raise HTTPException(404, f"no dead letter {letter_id}") from None
    return RedirectResponse(f"/letters/{letter_id}", status_code=303)


@router.post("/letters/{letter_id}/edit")
async def edit_letter(request: Request, who: Operator, letter_id: LetterId) -> Response:
    return await run_in_threadpool(_edit_letter, request, who, letter_id, await request.form())


def _edit_letter(
    request: Request, who: Identity, letter_id: int, form: ImmutableMultiDict[str, Any]
) -> Response:
    """Check the edited body and headers and show the difference; send only what was shown
    (`previewed` names it), then back to the letter, now replayed with its edit."""
    console = console_of(request)
    records = console.records()
    stored = records.get(letter_id)
    if stored is None:
        raise HTTPException(404, f"no dead letter {letter_id}")
    body = str(form.get("body") or "")
    names = [str(v) for v in form.getlist("header_name")]
    values = [str(v) for v in form.getlist("header_value")]
    rows = [(name, value) for name, value in zip(names, values, strict=False) if name.strip()]
    changes = editor.form_changes(editable_headers(as_dead_letter(stored).headers), names, values)
    shown = editor.digest(body, changes)
    try:
        draft = editor.checked(
            console.settings, records, letter_id, body.encode("utf-8", "surrogatepass"), changes
        )
        if form.get("step") != "send" or form.get("previewed") != shown:
            context = editor.page(
                console.settings, stored, body_text=body, rows=rows, shown=draft.diff(), previewed=shown
            )
            return render(request, "edit.html", context)
        editor.send(console.settings, records, who, draft)
    except editor.EditProblem as exc:
        context = editor.page(console.settings, stored, body_text=body, rows=rows, errors=exc.problems)
        return render(request, "edit.html", context, status_code=exc.status)
    return RedirectResponse(f"/letters/{letter_id}", status_code=303)


@router.post("/actions/preview")
async def preview(request: Request, _: Operator) -> Response:
    # The form is read here, on the event loop; the store is asked in a worker thread.
    return await run_in_threadpool(_preview, request, await request.form())


def _preview(request: Request, form: ImmutableMultiDict[str, Any]) -> Response:
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
        return render(request, "problem.html", {"reason": str(exc)}, status_code=422)
    context = {
        "action": action,
        "selection": selection,
        "rate": rate or console_of(request).settings.replay_rate,
        "at": str(form.get("at") or "").strip()[:64],
        "count": count,
        "plans": plans,
        "unconsumed": console_of(request).unconsumed() if action == "replay" else None,
    }
    return render(request, "preview.html", context)


@router.post("/actions/confirm")
async def confirm(request: Request, who: Operator) -> Response:
    return await run_in_threadpool(_confirm, request, who, await request.form())


def _confirm(request: Request, who: Identity, form: ImmutableMultiDict[str, Any]) -> Response:
    action, selection, rate = _action(form)
    console = console_of(request)
    records = console.records()
    try:
        if action == "replay":
            unconsumed = None if form.get("confirm_no_consumer") == "true" else console.unconsumed()
            if unconsumed is not None:
                reason = f'{unconsumed}; tick "replay anyway" on the preview to replay all the same'
                return render(request, "problem.html", {"reason": reason}, status_code=409)
            operation = console.runner.start(
                records,
                who,
                selection.for_action(),
                rate=rate or console.settings.replay_rate,
                force=False,
                to_original=False,
                max_replays=actions.DEFAULT_MAX_REPLAYS,
                at=_at(str(form.get("at") or "").strip()),
                canary=_canary(str(form.get("canary") or "").strip()),
            )
            actions.started(who, operation)
            return RedirectResponse(f"/replays/{operation.id}", status_code=303)
        done = (actions.archive if action == "archive" else actions.purge)(records, who, selection)
    except actions.RefusedAction as exc:
        return render(request, "problem.html", {"reason": str(exc)}, status_code=422)
    return render(request, "done.html", {"action": action, "done": done})


@router.post("/replays/{operation_id}/cancel")
def cancel_replay(request: Request, who: Operator, operation_id: ReplayId) -> Response:
    try:
        operation = use_cases.cancel_replay(console_of(request).records(), who.name, operation_id)
    except UnknownOperation:
        raise HTTPException(404, f"no replay {operation_id}") from None
    actions.cancelled(who, operation)
    return RedirectResponse(f"/replays/{operation_id}", status_code=303)


@router.post("/replays/{operation_id}/resume")
def resume_replay(request: Request, who: Operator, operation_id: ReplayId) -> Response:
    console = console_of(request)
    try:
        operation = console.runner.resume(console.records(), who, operation_id)
    except UnknownOperation:
        raise HTTPException(404, f"no replay {operation_id}") from None
    except OperationBusy as exc:
        return render(request, "problem.html", {"reason": str(exc)}, status_code=409)
    except InvalidRate as exc:
        reason = f"replay {operation_id} cannot be resumed: {exc}"
        return render(request, "problem.html", {"reason": reason}, status_code=422)
    actions.resumed(who, operation)
    return RedirectResponse(f"/replays/{operation_id}", status_code=303)


def _action(form: ImmutableMultiDict[str, Any]) -> tuple[str, actions.Selection, float | None]:
    action = form.get("action")
    if action not in ("replay", "archive", "purge"):
        raise Denied(403, "unknown action")
    selection = selection_of(form)
    if form.get("scope") == "checked":
        selection = actions.Selection(letter=selection.letter, status=selection.status)
    elif form.get("scope") == "matching":
        selection = selection.model_copy(update={"letter": []})
    return str(action), selection, _rate(str(form.get("rate") or "").strip())


def _at(text: str) -> datetime | None:
    """The form's time to replay at (blank: now); one that is not a time to come is a 422."""
    try:
        return parse_at(text) if text else None
    except ValueError as exc:
        raise HTTPException(422, f"replay at: {exc}") from None


def _rate(text: str) -> float | None:
    """The form's rate (blank: the default); anything but a rate a replay can hold is a 422."""
    try:
        return check_rate(float(text)) if text else None
    except InvalidRate as exc:
        raise HTTPException(422, str(exc)) from None
    except ValueError:
        raise HTTPException(422, f"rate {text[:40]!r} is not a number of letters per second") from None


def _canary(text: str) -> int:
    """The form's canary (blank: none); anything but a number of letters is a 422."""
    if not text:
        return 0
    if not text.isdigit() or not 1 <= int(text) <= 10_000:
        raise HTTPException(422, f"canary {text[:40]!r} is not a number of letters from 1 to 10,000")
    return int(text)
