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
from worker.console.state import Console

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


class Denied(Exception):
    """The request is refused: 401 (who are you?) or 403 (not you, not this, not from there)."""

    def __init__(self, status: Literal[401, 403], reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


async def authenticate_async(request: Request) -> Identity | None:
    """`authenticate`, with a password check (argon2: slow on purpose) off the event loop."""
    return await run_in_threadpool(authenticate, request)


def authenticate(request: Request) -> Identity | None:
    """Who sent the request, or None if nobody says."""
    console = console_of(request)
    proxy = console.access.proxy
    if proxy is not None and proxy.trusts(request.client.host if request.client else None):
        found = proxy.identity(request.headers)
        if found == "no role":
            raise Denied(403, "none of your groups has a console role")
        if found is not None:
            return found
    authorization = request.headers.get("authorization")
    if authorization is not None:
        return _basic(console, authorization)
    session = console.sessions.read(request.cookies.get("renewals_console"))
    signed_in = session.identity() if session else None
    if signed_in is None or console.access.users is None:
        return None
    user = console.access.users.refresh().users.get(signed_in.name)
    # Removed from the file: signed out; given another role: that role, from now on.
    return None if user is None else Identity(user.name, user.role, "session")


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
    if not console.sessions.csrf_valid(console.sessions.read(request.cookies.get("renewals_console")), token):
        raise Denied(403, "missing or invalid CSRF token: reload the page and try again")


def _basic(console: Console, authorization: str) -> Identity:
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic" or console.access.users is None:
        raise Denied(401, "use HTTP Basic with a console user")
    try:
        name, _, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise Denied(401, "malformed HTTP Basic credentials") from None
    identity = console.basic_checks.verify(console.access.users.refresh(), name, password)
    if identity is None:
        raise Denied(401, "wrong user name or password")
    return identity
