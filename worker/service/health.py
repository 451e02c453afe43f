"""Liveness and readiness, and the HTTP endpoints that serve them with the metrics.

The main loop writes what it knows (it ticked; the consumer is registered; the store
answered); a background thread of the HTTP server reads it. `/healthz` says the main loop is
alive, `/readyz` that the worker is actually taking work: consumer registered on the broker,
store answering, loop fresh. `/metrics` is Prometheus' text format.
"""

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer


class Health:
    """Written by the main loop only; read by the probe thread (plain attribute reads)."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self._tick = time.monotonic()
        self.consuming = False
        self.store_answers = True
        self.store_checked = time.monotonic()

    def tick(self) -> None:
        self._tick = time.monotonic()

    def store(self, answers: bool) -> None:
        self.store_answers = answers
        self.store_checked = time.monotonic()

    def live(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self._tick
        return age < self.stale_after, {"loop_age_s": round(age, 3)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        live, facts = self.live()
        facts |= {"consuming": self.consuming, "store_answers": self.store_answers}
        return live and self.consuming and self.store_answers, facts


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's name
        """Probes every few seconds are not worth a log line."""


def serve(health: Health, registry: CollectorRegistry, host: str, port: int) -> WSGIServer:
    """Start the endpoints on a daemon thread; the server is returned so it can be shut down."""
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if path in ("/healthz", "/readyz"):
            ok, facts = health.live() if path == "/healthz" else health.ready()
            body = json.dumps({"status": "ok" if ok else "unavailable", **facts}).encode()
            status = "200 OK" if ok else "503 Service Unavailable"
            start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        result: Iterable[bytes] = metrics(environ, start_response)
        return result

    server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="renewals-http", daemon=True).start()
    return server
