"""Pages from Jinja2 templates, always autoescaped: what a message carries (body, headers, ids)
is text in the page, never markup. The body is shown as pretty-printed JSON text."""

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from worker.console.guard import Denied, authenticate, console_of
from worker.store import StoreUnavailable

_ENVIRONMENT = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every template, whatever its name
    undefined=jinja2.StrictUndefined,
)


def render(
    request: Request, template: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    console = console_of(request)
    identity = getattr(request.state, "identity", None)
    if identity is None:
        try:
            identity = authenticate(request)
        except (Denied, StoreUnavailable):  # refused, or its session unknown: the page is for nobody
            identity = None
    page = {
        "identity": identity,
        "csrf_token": console.sessions.csrf_token(request.state.session),
        "csrf_headers": json.dumps({"X-CSRF-Token": console.sessions.csrf_token(request.state.session)}),
        "password_sign_in": console.access.users is not None,
        "path": request.url.path,
        "alerting": console.settings.alertmanager_url is not None,  # worker/console/alerts.py
        "status": status_code,  # problem.html's heading says what happened
        **context,
    }
    return HTMLResponse(_ENVIRONMENT.get_template(template).render(page), status_code=status_code)


def pretty_body(body: bytes) -> str:
    """Indented JSON if the body is JSON, else the text (undecodable bytes escaped)."""
    text = body.decode("utf-8", "backslashreplace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than JSON is read here
        return text


def when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M:%SZ")


def shown(value: Any) -> str:
    """A header or property value as text (bytes escaped, structures as JSON)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict | list):
        return json.dumps(value, default=str, ensure_ascii=False)
    return str(value)


def thousands(value: int) -> str:
    """A count as people read it: 1,234."""
    return f"{value:,}"


_ENVIRONMENT.filters["when"] = when
_ENVIRONMENT.filters["shown"] = shown
_ENVIRONMENT.filters["thousands"] = thousands
