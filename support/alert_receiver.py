"""A webhook receiver for Alertmanager on 127.0.0.1: it keeps every alert it is sent, with the
moment it arrived, for the tests to wait on."""

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from support.polling import wait_until


@dataclass(frozen=True)
class ReceivedAlert:
    status: str  # firing or resolved
    labels: dict[str, str]
    annotations: dict[str, str]
    received: float  # time.monotonic() when it arrived


class AlertReceiver:
    """`with AlertReceiver() as receiver:` serves `receiver.url` and keeps `receiver.alerts`."""

    def __init__(self) -> None:
        self.alerts: list[ReceivedAlert] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/alerts"

    def __enter__(self) -> "AlertReceiver":
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, alertname: str, status: str = "firing", timeout: float = 60.0) -> ReceivedAlert:
        """The first alert named `alertname` received with `status`."""

        def found() -> ReceivedAlert | None:
            with self._lock:
                return next(
                    (a for a in self.alerts if a.labels.get("alertname") == alertname and a.status == status),
                    None,
                )

        alert = wait_until(found, f"{alertname} {status} at the webhook", timeout, every=0.02)
        assert alert is not None  # wait_until returns only what is truthy
        return alert

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                arrived = time.monotonic()
                length = int(self.headers.get("Content-Length") or 0)
                payload: dict[str, Any] = json.loads(self.rfile.read(length))
                with receiver._lock:
                    receiver.alerts += [
                        ReceivedAlert(a["status"], a["labels"], a["annotations"], arrived)
                        for a in payload.get("alerts", [])
                    ]
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
