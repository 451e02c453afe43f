"""The HTTP endpoint on loopback: the answers it gives, and the bounds it keeps against idle,
slow and numerous clients (one thread, a capped number of connections, a deadline each)."""

import socket
import time
from collections.abc import Iterator

import pytest

from worker.service.endpoint import ProbeServer, Response
from worker.service.health import Health, serve
from worker.service.metrics import Metrics


def ask(endpoint: ProbeServer, request: bytes, timeout: float = 2.0) -> bytes:
    """Send `request` on a new connection and read until the server closes it."""
    with socket.create_connection(endpoint.address, timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def get(endpoint: ProbeServer, path: str) -> tuple[int, bytes]:
    answer = ask(endpoint, f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


@pytest.fixture
def endpoint() -> Iterator[ProbeServer]:
    health = Health(stale_after=60)
    metrics = Metrics("sqlite")
    metrics.watch(health)
    served = serve(health, metrics.registry, "127.0.0.1", 0)
    yield served
    served.close()


def small(max_connections: int = 8, timeout: float = 0.3) -> ProbeServer:
    return ProbeServer(
        {"/ok": lambda: Response(200, "text/plain", b"ok\n")},
        "127.0.0.1",
        0,
        max_connections=max_connections,
        timeout=timeout,
    ).start()


def test_the_three_paths_answer_and_any_other_path_is_404(endpoint: ProbeServer) -> None:
    """/healthz 200, /readyz 503 (not consuming yet), /metrics the Prometheus text; /, /nope and /metrics/x are 404, POST is 405, HEAD has no body."""
    status, body = get(endpoint, "/healthz")
    assert status == 200 and b'"status": "ok"' in body
    status, body = get(endpoint, "/readyz")
    assert status == 503 and b'"consuming": false' in body
    status, body = get(endpoint, "/metrics?name[]=x")
    assert status == 200 and b"renewals_build_info" in body and b"renewals_ready 0.0" in body
    for path in ("/", "/nope", "/metrics/x", "/healthz/"):
        status, body = get(endpoint, path)
        assert status == 404 and b"/metrics" in body, path
    assert ask(endpoint, b"POST /metrics HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405 ")
    head = ask(endpoint, b"HEAD /healthz HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and head.endswith(b"\r\n\r\n")
    assert ask(endpoint, b"nonsense\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert ask(endpoint, b"GET /" + b"a" * 9000).startswith(b"HTTP/1.1 431 ")


def test_the_default_address_is_loopback_only() -> None:
    """RENEWALS_METRICS_HOST defaults to 127.0.0.1: nothing outside the machine reaches the endpoint unless configured."""
    from worker.settings import Settings

    assert Settings.model_fields["metrics_host"].default == "127.0.0.1"


def test_an_idle_connection_and_a_slowloris_are_closed_at_their_deadline() -> None:
    """A client that sends nothing, and one that sends a byte at a time, are both closed within the timeout (0.3 s here) and a little."""
    served = small(timeout=0.3)
    try:
        idle = socket.create_connection(served.address, timeout=3)
        slow = socket.create_connection(served.address, timeout=3)
        started = time.monotonic()
        closed_by_server = False
        for byte in b"GET /ok HTTP/1.1\r\nHost: x\r\n":
            try:
                slow.send(bytes((byte,)))
            except OSError:
                closed_by_server = True
                break
            time.sleep(0.05)
        assert idle.recv(10) == b"" and time.monotonic() - started < 2
        assert closed_by_server or slow.recv(10) == b""
        assert served.open_connections == 0
        idle.close()
        slow.close()
    finally:
        served.close()


def test_connections_beyond_the_cap_evict_the_oldest_and_a_new_request_is_answered_at_once() -> None:
    """500 idle connections against a cap of 8: the endpoint holds at most 8, and a request made after them is answered within a fraction of a second."""
    served = small(max_connections=8, timeout=30)
    idle = []
    try:
        for _ in range(500):
            idle.append(socket.create_connection(served.address, timeout=3))
        time.sleep(0.2)
        assert served.open_connections <= 8
        started = time.monotonic()
        assert get(served, "/ok") == (200, b"ok\n")
        assert time.monotonic() - started < 0.5
    finally:
        for sock in idle:
            sock.close()
        served.close()


def test_a_failing_answer_is_a_500_and_the_endpoint_serves_on() -> None:
    """A route that raises gives 500 naming the exception type; the next request is answered."""

    def broken() -> Response:
        raise RuntimeError("boom")

    served = ProbeServer(
        {"/broken": broken, "/ok": lambda: Response(200, "text/plain", b"ok\n")}, "127.0.0.1", 0
    ).start()
    try:
        assert get(served, "/broken") == (500, b"RuntimeError\n")
        assert get(served, "/ok") == (200, b"ok\n")
    finally:
        served.close()


def test_an_address_in_use_is_an_os_error_at_once() -> None:
    """Binding a port that is taken raises OSError in the caller, not in a thread."""
    served = small()
    try:
        with pytest.raises(OSError):
            ProbeServer({}, "127.0.0.1", served.address[1])
    finally:
        served.close()
