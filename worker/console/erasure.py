"""The console's door to erasure (worker/erasure), operators only: the Forget page (a form, its
preview, and a confirmation that erases) and `POST /api/forget` (a preview unless `confirm`).
The same use case as `renewals forget`; the address itself is never logged."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import ImmutableMultiDict

from worker.console.guard import console_of, require
from worker.console.identity import Identity
from worker.console.render import render
from worker.erasure import ErasureReport, InvalidSubject, NotificationsPending, forget, preview, subject_of
from worker.logs import get_logger

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api", tags=["api"])
log = get_logger("worker.console")

Operator = Annotated[Identity, Depends(require("operator"))]


class ForgetRequest(BaseModel):
    """Whose data: a client (with a partner, only that partner's rows), or an address."""

    client: str | None = None
    partner: str | None = None
    email: str | None = None
    confirm: bool = Field(False, description="erase now; without it, only say what would be erased")


@router.get("/forget")
def forget_page(request: Request, _: Operator) -> Response:
    return render(request, "forget.html", {"report": None, "asked": ForgetRequest()})


@router.post("/forget")
async def forget_form(request: Request, who: Operator) -> Response:
    # The form is read here, on the event loop; the store is asked in a worker thread.
    return await run_in_threadpool(_forget_form, request, who, await request.form())


def _forget_form(request: Request, who: Identity, form: ImmutableMultiDict[str, Any]) -> Response:
    fields = {name: str(form.get(name) or "").strip() or None for name in ("client", "partner", "email")}
    asked = ForgetRequest(**fields, confirm=form.get("confirm") == "yes")
    try:
        report = _done(request, who, asked)
    except HTTPException as exc:
        return render(request, "problem.html", {"reason": exc.detail}, status_code=exc.status_code)
    return render(request, "forget.html", {"report": report, "asked": asked})


@api_router.post("/forget", summary="Erase a client's or a person's data (a preview unless confirm)")
def forget_api(request: Request, who: Operator, body: ForgetRequest) -> dict[str, object]:
    return _done(request, who, body).as_dict()


def _done(request: Request, who: Identity, asked: ForgetRequest) -> ErasureReport:
    """The preview, or the erasure (confirmed); a mistake is a 422, a waiting notification a 409."""
    console = console_of(request)
    try:
        subject = subject_of(asked.client, asked.email, asked.partner)
    except InvalidSubject as exc:
        raise HTTPException(422, str(exc)) from None
    if not asked.confirm:
        return preview(console.store(), console.settings, subject)
    try:
        report = forget(console.store(), console.settings, subject, who.name)
    except NotificationsPending as exc:
        raise HTTPException(409, str(exc)) from None
    log.info("console.erased", user=who.name, operation_id=report.operation_id, rows=report.total)
    return report
