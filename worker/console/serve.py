"""One console process: check the configuration (closed by default), build the app, serve it
with uvicorn until SIGTERM/SIGINT, then stop the replays it runs."""

import socket

import uvicorn

from worker.app import connect_store
from worker.console.access import access_of
from worker.console.app import create_app
from worker.console.identity import ConsoleRefused
from worker.console.sessions import Sessions, session_key
from worker.console.state import Console
from worker.failures import cannot_listen
from worker.logs import get_logger
from worker.settings import Settings

log = get_logger("worker.console")


def console_of_settings(settings: Settings) -> Console:
    """The console as configured; ConsoleRefused (one line naming the fix) if it may not start."""
    access = access_of(settings)
    sessions = Sessions(
        session_key(settings),
        absolute=settings.console_session_hours * 3600,
        idle=settings.console_session_idle_minutes * 60,
        secure=settings.console_secure_cookies,
    )
    return Console(settings, access, sessions)


def serve(settings: Settings, host: str, port: int) -> None:
    console = console_of_settings(settings)
    listening = _listen(host, port)
    try:
        connect_store(settings).close()  # migrated like the worker does (or checked: STORE_MIGRATE=false)
    except BaseException:
        listening.close()
        raise
    app = create_app(console)
    ways = [w for w, on in (("users file", console.access.users), ("proxy", console.access.proxy)) if on]
    log.info("console.started", url=f"http://{host}:{port}/", ways_in=ways)
    if host not in ("127.0.0.1", "::1", "localhost") and not settings.console_secure_cookies:
        log.warning(
            "console.exposed_without_tls",
            host=host,
            fix="serve it behind a TLS proxy and set RENEWALS_CONSOLE_SECURE_COOKIES=true",
        )
    # proxy_headers off: X-Forwarded-For must never change who the client is, or anyone could
    # claim to be the trusted proxy. Replays are stopped in the app's lifespan, on shutdown.
    config = uvicorn.Config(app, proxy_headers=False, server_header=False, log_level="warning")
    uvicorn.Server(config).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound here so that a port in use is one line, not uvicorn's exit."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        return socket.create_server((host, port), family=family, backlog=128)
    except OSError as exc:
        raise ConsoleRefused(
            cannot_listen(f"{host}:{port}", exc, "choose another --host or --port")
        ) from None
