"""Liveness and readiness, and the HTTP endpoints that serve them with the metrics.

The main loop writes what it knows (it ticked; the consumer is registered; the store
answered); a background thread of the HTTP server reads it. `/healthz` says the main loop is
alive, `/readyz` that the worker is actually taking work: its consumer registered and still
delivered to (`consumer_watch`), store answering, loop fresh. `/metrics` is Prometheus' text format.
"""

import json
import time
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from worker.service.endpoint import ProbeServer, Response


class Health:
    """Written by the main loop only; read by the probe thread (plain attribute reads)."""

    def __init__(self, stale_after: float) -> None:
        self.stale_after = stale_after
        self._tick = time.monotonic()
        self.consuming = False
        self.consumer_lost: str | None = None  # why the broker no longer delivers to us, if it does not
        self.store_answers = True
        self.store_checked = time.monotonic()

    def tick(self) -> None:
        self._tick = time.monotonic()

    def subscribed(self, consuming: bool) -> None:
        self.consuming = consuming
        if consuming:
            self.consumer_lost = None

    def lost_consumer(self, why: str) -> None:
        """The broker no longer delivers to the worker's consumer: not ready, at once."""
        self.consuming = False
        self.consumer_lost = why

    def store(self, answers: bool) -> None:
        self.store_answers = answers
        self.store_checked = time.monotonic()

    def live(self) -> tuple[bool, dict[str, Any]]:
        age = time.monotonic() - self._tick
        return age < self.stale_after, {"loop_age_s": round(age, 3)}

    def ready(self) -> tuple[bool, dict[str, Any]]:
        live, facts = self.live()
        facts |= {"consuming": self.consuming, "store_answers": self.store_answers}
        if self.consumer_lost is not None:
            facts["consumer_lost"] = self.consumer_lost
        return live and self.consuming and self.store_answers, facts


def serve(health: Health, registry: CollectorRegistry, host: str, port: int) -> ProbeServer:
    """Start the endpoints on a daemon thread (see `endpoint`: bounded connections, each with a
    deadline); OSError at once if the address cannot be bound. Any other path is 404."""

    def probe(check: Any) -> Response:
        ok, facts = check()
        body = json.dumps({"status": "ok" if ok else "unavailable", **facts}).encode()
        return Response(200 if ok else 503, "application/json", body)

    return ProbeServer(
        {
            "/metrics": lambda: Response(200, CONTENT_TYPE_LATEST, generate_latest(registry)),
            "/healthz": lambda: probe(health.live),
            "/readyz": lambda: probe(health.ready),
        },
        host,
        port,
    ).start()
