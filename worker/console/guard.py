"""Every request is checked here, on the server: who is asking (proxy headers from a trusted
address, HTTP Basic, or the signed session), whether their role allows it, and, for anything
that changes state, that it was not forged by another site (CSRF token, or for HTTP Basic no
cross-site origin)."""

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Literal
from urllib.parse import urlsplit

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from worker.console.identity import Identity, Role
from worker.console.passwords import Throttled, check_password
from worker.console.sessions import COOKIE
from worker.console.state import Console

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


class Denied(Exception):
    """The request is refused: 401 (who are you?), 403 (not you, not this, not from there) or
    429 (too many failed sign-ins, or too many at once: come back in `retry_after` seconds)."""

    def __init__(self, status: Literal[401, 403, 429], reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status, self.reason, self.retry_after = status, reason, retry_after


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def authenticate_async(request: Request) -> Identity | None:
    """Who sent the request, or None if nobody says: asked once per request, with the password
    check (argon2, throttled) and the session's row in the store off the event loop."""
    if hasattr(request.state, "who"):
        known: Identity | None = request.state.who
        return known
    console = console_of(request)
    proxied = _proxied(console, request)
    authorization = request.headers.get("authorization")
    who: Identity | None = proxied
    if proxied is None and authorization is not None:
        who = await _basic(console, request, authorization)
    elif proxied is None:
        who = await run_in_threadpool(_signed_in, console, request)
    request.state.who = who
    return who


def authenticate(request: Request) -> Identity | None:
    """`authenticate_async` for a page being drawn: it never runs a password hash (a script's
    password counts only if it was right a moment ago)."""
    if hasattr(request.state, "who"):
        known: Identity | None = request.state.who
        return known
    console = console_of(request)
    proxied = _proxied(console, request)
    if proxied is not None:
        return proxied
    authorization = request.headers.get("authorization")
    if authorization is not None:
        name, password = _credentials(console, authorization)
        users = console.access.users
        return None if users is None else console.basic_checks.remembered(users.refresh(), name, password)
    return _signed_in(console, request)


def _proxied(console: Console, request: Request) -> Identity | None:
    proxy = console.access.proxy
    if proxy is not None and proxy.trusts(request.client.host if request.client else None):
        found = proxy.identity(request.headers)
        if found == "no role":
            raise Denied(403, "none of your groups has a console role")
        return found
    return None


def _signed_in(console: Console, request: Request) -> Identity | None:
    session = console.sessions.read(request.cookies.get(COOKIE))
    return None if session is None else console.signed_in(session)


def require(role: Role) -> Callable[[Request], Awaitable[Identity]]:
    """A FastAPI dependency: the caller's identity, if their role is at least `role` and a
    state-changing request is not forged."""

    async def check(request: Request) -> Identity:
        identity = await authenticate_async(request)
        if identity is None:
            raise Denied(401, "sign in first")
        if request.method not in SAFE_METHODS:
            await check_not_forged(request, identity)
        if not identity.may(role):
            raise Denied(403, f"this needs the {role} role; {identity.name} is a {identity.role}")
        request.state.identity = identity
        return identity

    return check


async def check_not_forged(request: Request, identity: Identity | None) -> None:
    """Another site may not make a signed-in browser change anything."""
    # Browsers say where a request comes from; scripts say nothing. (With no referrer policy,
    # a form's Origin is "null": the CSRF token decides then.)
    if request.headers.get("sec-fetch-site", "none") not in ("none", "same-origin"):
        raise Denied(403, "cross-site request refused")
    origin = request.headers.get("origin")
    if origin not in (None, "null") and urlsplit(origin).netloc != request.headers.get("host"):
        raise Denied(403, "cross-site request refused")
    if identity is not None and identity.via == "basic":
        return  # a script with explicit credentials: no session, so no CSRF token either
    token = request.headers.get(CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        token = value if isinstance(value, str) else None
    console = console_of(request)
    if not console.sessions.csrf_valid(console.sessions.read(request.cookies.get(COOKIE)), token):
        raise Denied(403, "missing or invalid CSRF token: reload the page and try again")


async def _basic(console: Console, request: Request, authorization: str) -> Identity:
    name, password = _credentials(console, authorization)
    address = request.client.host if request.client else None
    try:
        identity = await check_password(console, address, name, password, "basic")
    except Throttled as exc:
        raise Denied(429, exc.reason, exc.retry_after) from None
    if identity is None:
        raise Denied(401, wrong_password(console))
    return identity


def _credentials(console: Console, authorization: str) -> tuple[str, str]:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or console.access.users is None:
        raise Denied(401, "use HTTP Basic with a console user")
    try:
        name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Denied(401, "malformed HTTP Basic credentials") from None
    return name, password


def wrong_password(console: Console) -> str:
    """Why a password did not sign in (the users file's own problem is in the log only)."""
    users = console.access.users
    if users is not None and users.problem is not None:
        return "password sign-in is closed: the console's users file is unusable (its log says why)"
    return "wrong user name or password"
