"""What fires for this deployment, read from Alertmanager (`RENEWALS_ALERTMANAGER_URL`), and
silencing one alert for a chosen time through Alertmanager's silences API (v2), audited. Without
the setting none of this is shown or served."""

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, HTTPException, Request, Response
from pydantic import BaseModel, Field, ValidationError

from worker.console.guard import console_of, require
from worker.console.identity import Identity
from worker.console.render import render
from worker.dead_letters.records import DeadLetterRecords
from worker.logs import get_logger
from worker.redaction import masked

router = APIRouter()
log = get_logger("worker.console")

Viewer = Annotated[Identity, Depends(require("viewer"))]
Operator = Annotated[Identity, Depends(require("operator"))]

SERVICE = ("service", "renewal-routing")
"""The label every shipped rule sets: the alerts of this deployment (deploy/prometheus/)."""
MAX_SILENCE_MINUTES = 7 * 24 * 60
TIMEOUT = 5.0


class AlertmanagerTrouble(Exception):
    """Alertmanager did not answer, or refused; the message is one line, passwords masked."""


@dataclass(frozen=True, slots=True)
class FiringAlert:
    fingerprint: str
    name: str
    severity: str
    summary: str
    runbook_url: str
    since: str
    labels: dict[str, str]


class SilenceRequest(BaseModel):
    """Silence one firing alert (by its fingerprint) for `minutes`."""

    fingerprint: str = Field(pattern=r"^[0-9a-f]{1,32}$", description="the firing alert's fingerprint")
    minutes: int = Field(ge=1, le=MAX_SILENCE_MINUTES, description="how long, at most a week")
    comment: str = Field("", max_length=500, description="why (kept in Alertmanager and the audit)")


def firing(url: str) -> list[FiringAlert]:
    """The alerts of this deployment that fire now and are neither silenced nor inhibited."""
    query = urllib.parse.urlencode(
        {
            "active": "true",
            "silenced": "false",
            "inhibited": "false",
            "filter": f'{SERVICE[0]}="{SERVICE[1]}"',
        }
    )
    found = _call(url, f"/api/v2/alerts?{query}")
    alerts = [
        FiringAlert(
            fingerprint=str(alert.get("fingerprint", "")),
            name=str(labels.get("alertname", "?")),
            severity=str(labels.get("severity", "")),
            summary=str(alert.get("annotations", {}).get("summary", "")),
            runbook_url=str(alert.get("annotations", {}).get("runbook_url", "")),
            since=str(alert.get("startsAt", ""))[:19].replace("T", " ") + "Z",
            labels={str(k): str(v) for k, v in labels.items()},
        )
        for alert in found
        if isinstance(alert, dict) and isinstance(labels := alert.get("labels"), dict)
    ]
    return sorted(alerts, key=lambda a: (a.severity != "critical", a.name, a.summary))


def silence(
    url: str, records: DeadLetterRecords, identity: Identity, request: SilenceRequest
) -> dict[str, Any]:
    """Silence the firing alert `request.fingerprint` (matching all its labels) and audit it."""
    chosen = next((a for a in firing(url) if a.fingerprint == request.fingerprint), None)
    if chosen is None:
        raise HTTPException(
            404, f"no firing alert {request.fingerprint}: it may have resolved or been silenced"
        )
    starts = datetime.now(UTC)
    ends = starts + timedelta(minutes=request.minutes)
    comment = request.comment.strip() or f"silenced from the renewals console for {request.minutes} min"
    body = {
        "matchers": [
            {"name": name, "value": value, "isRegex": False, "isEqual": True}
            for name, value in sorted(chosen.labels.items())
        ],
        "startsAt": starts.isoformat(),
        "endsAt": ends.isoformat(),
        "createdBy": identity.name,
        "comment": comment,
    }
    answer = _call(url, "/api/v2/silences", body)
    silence_id = str(answer.get("silenceID", "")) if isinstance(answer, dict) else ""
    selection = " ".join(f"{k}={v}" for k, v in sorted(chosen.labels.items()))
    records.audit(
        "silence",
        actor=identity.name,
        selection=selection,
        counts={"minutes": request.minutes},
        result=f"silence {silence_id} until {ends:%Y-%m-%d %H:%M}Z: {comment}",
    )
    log.info(
        "console.action",
        action="silence",
        user=identity.name,
        role=identity.role,
        via=identity.via,
        alert=chosen.name,
        silence_id=silence_id,
        minutes=request.minutes,
    )
    return {
        "silence_id": silence_id,
        "alert": chosen.name,
        "labels": chosen.labels,
        "until": ends.isoformat(),
    }


def _call(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(
        url.rstrip("/") + path,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
        method="GET" if body is None else "POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read(500).decode("utf-8", "replace").strip()
        raise AlertmanagerTrouble(masked(f"Alertmanager refused: {exc.code} {detail}")) from None
    except (OSError, ValueError) as exc:
        raise AlertmanagerTrouble(masked(f"Alertmanager does not answer at {url}: {exc}")) from None


def _url(request: Request) -> str:
    url = console_of(request).settings.alertmanager_url
    if url is None:
        raise HTTPException(404, "alerts are off: set RENEWALS_ALERTMANAGER_URL")
    return url


@router.get("/alerts", include_in_schema=False)
def alerts_strip(request: Request, who: Viewer) -> Response:
    return _strip(request, who, None)


@router.post("/alerts/silence", include_in_schema=False)
def silence_form(
    request: Request,
    who: Operator,
    fingerprint: Annotated[str, Form()],
    minutes: Annotated[str, Form()],
    comment: Annotated[str, Form()] = "",
) -> Response:
    url = _url(request)
    try:
        chosen = SilenceRequest(fingerprint=fingerprint, minutes=minutes, comment=comment)
    except ValidationError:
        return _strip(request, who, f"choose between 1 and {MAX_SILENCE_MINUTES} minutes", 422)
    try:
        done = silence(url, console_of(request).records(), who, chosen)
    except AlertmanagerTrouble as exc:
        return _strip(request, who, str(exc), 502)
    except HTTPException as exc:
        return _strip(request, who, str(exc.detail), exc.status_code)
    return _strip(request, who, f"silenced {done['alert']} until {done['until'].replace('T', ' ')}")


@router.get("/api/alerts", summary="The alerts firing for this deployment (from Alertmanager)")
def get_alerts(request: Request, _: Viewer) -> list[dict[str, Any]]:
    try:
        return [_as_dict(alert) for alert in firing(_url(request))]
    except AlertmanagerTrouble as exc:
        raise HTTPException(502, str(exc)) from None


@router.post("/api/alerts/silences", summary="Silence one firing alert for a while (audited)")
def post_silence(request: Request, who: Operator, chosen: SilenceRequest) -> dict[str, Any]:
    try:
        return silence(_url(request), console_of(request).records(), who, chosen)
    except AlertmanagerTrouble as exc:
        raise HTTPException(502, str(exc)) from None


def _as_dict(alert: FiringAlert) -> dict[str, Any]:
    return {
        "fingerprint": alert.fingerprint,
        "name": alert.name,
        "severity": alert.severity,
        "summary": alert.summary,
        "runbook_url": alert.runbook_url,
        "since": alert.since,
        "labels": alert.labels,
    }


def _strip(request: Request, who: Identity, message: str | None, status: int = 200) -> Response:
    url = _url(request)
    error = None
    found: list[FiringAlert] = []
    try:
        found = firing(url)
    except AlertmanagerTrouble as exc:
        error = str(exc)
    context = {"alerts": found, "error": error, "message": message, "may_silence": who.may("operator")}
    return render(request, "alerts.html", context, status_code=status)
