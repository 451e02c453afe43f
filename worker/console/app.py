"""The console as an ASGI application: pages, the JSON API under /api/, the vendored static
files, and what every response carries (security headers, the session cookie)."""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker.console import alerts, api, erasure, forms, pages
from worker.console.guard import Denied, require
from worker.console.identity import Identity
from worker.console.params import one_line
from worker.console.render import render
from worker.console.sessions import COOKIE
from worker.console.state import Console
from worker.redaction import masked
from worker.settings import VERSION
from worker.store import StoreUnavailable

HERE = Path(__file__).parent

SECURITY_HEADERS = {
    # Scripts only from our own files (htmx and nothing else), no inline script, no eval; no
    # framing by anyone; nothing leaks in Referer.
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self';"
    " connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
    "Cache-Control": "no-store",
}


def create_app(console: Console) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        # Stopping (SIGTERM, Ctrl-C): each replay this process runs stops after the letter in
        # hand and ends cancelled, resumable from any console or `renewals dlq replay --resume`.
        await run_in_threadpool(console.runner.stop)
        await run_in_threadpool(console.broker_figures.close)

    app = FastAPI(
        lifespan=lifespan,
        title="renewal routing console",
        version=VERSION,
        description="Dead letters, replays, owners and health of the renewal routing worker. "
        "Scripts authenticate with HTTP Basic as a console user: viewers read, operators act.",
        openapi_url=None,  # served below, to signed-in users only (closed by default)
        docs_url=None,  # the interactive docs load scripts from a CDN
        redoc_url=None,
    )
    app.state.console = console

    @app.get("/api/openapi.json", include_in_schema=False)
    def openapi(_: Annotated[Identity, Depends(require("viewer"))]) -> dict[str, Any]:
        return app.openapi()

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # none; said so, rather than a 404 in every browser log

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(forms.router)
    app.include_router(alerts.router)
    app.include_router(erasure.router)
    app.include_router(erasure.api_router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def every_response(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        """Give the browser a session (for its CSRF token) and set the security headers."""
        sessions = console.sessions
        session = sessions.read(request.cookies.get(COOKIE))
        request.state.session = session or sessions.fresh()
        request.state.session_changed = session is None
        response = await call_next(request)
        # Pages get a session (for their CSRF token); scripts on /api/ and static files need none.
        page = not request.url.path.startswith(("/api/", "/static/"))
        if request.state.session_changed and (page or session is not None):
            response.set_cookie(
                COOKIE,
                sessions.dump(request.state.session),
                max_age=sessions.max_age,
                httponly=True,
                samesite="strict",
                secure=sessions.secure,
                path="/",
            )
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    @app.exception_handler(Denied)
    async def denied(request: Request, exc: Denied) -> Response:
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
        if request.url.path.startswith("/api/"):
            if exc.status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="renewals console"'
            return JSONResponse({"detail": exc.reason}, status_code=exc.status, headers=headers)
        if exc.status == 401 and console.access.users is not None:
            return RedirectResponse("/login", status_code=303)
        page = render(request, "problem.html", {"reason": exc.reason}, status_code=exc.status)
        page.headers.update(headers)
        return page

    @app.exception_handler(StoreUnavailable)
    async def store_down(request: Request, exc: StoreUnavailable) -> Response:
        reason = f"the store does not answer: {masked(str(exc).splitlines()[0] if str(exc) else repr(exc))}"
        with suppress(Exception):  # a new connection next time, when it is back
            console.store().reconnect()
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": reason}, status_code=503)
        return render(request, "problem.html", {"reason": reason}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        """A value of the wrong form: the API's usual 422 (without the values sent back: they
        may be huge, or Infinity, which JSON cannot carry); a page says which, in one line."""
        if request.url.path.startswith("/api/"):
            errors = [{k: v for k, v in error.items() if k != "input"} for error in exc.errors()]
            return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
        return render(request, "problem.html", {"reason": one_line(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def problem(request: Request, exc: StarletteHTTPException) -> Response:
        if request.url.path.startswith(("/api/", "/static/")):
            return await http_exception_handler(request, exc)
        return render(request, "problem.html", {"reason": str(exc.detail)}, status_code=exc.status_code)

    return app
