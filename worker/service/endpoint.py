"""A tiny HTTP/1.1 server for a few GET endpoints that survives its clients.

One thread and one `selectors` loop serve every connection, so an idle or slow client costs a
file descriptor and a few bytes, never a thread. What a client can hold is bounded:

- at most `max_connections` are open; one more evicts the oldest, so a flood of idle
  connections never keeps a probe out, and the worker's own sockets (broker, store) never
  run short of file descriptors;
- a connection has `timeout` seconds from its accept to the end of its response (a
  slowloris that sends one byte a second is closed when its time is up);
- a request head is at most 8 KiB; every response closes the connection.

Only GET and HEAD are served, on the given paths; any other path is 404.

Why not a library: prometheus_client's server and the standard library's `http.server` and
`wsgiref` start a thread per connection with no timeout and no cap (the problem this fixes);
an ASGI server (uvicorn) would bring an event loop and a dependency for three fixed answers,
and does not evict idle connections either. What is needed here is small: the bounds above.
"""

import errno
import selectors
import socket
import threading
import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field

MAX_HEAD = 8 * 1024
_STATUS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    431: "Request Header Fields Too Large", 500: "Internal Server Error", 503: "Service Unavailable",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes


Route = Callable[[], Response]


@dataclass(slots=True)
class _Client:
    sock: socket.socket
    deadline: float
    received: bytearray = field(default_factory=bytearray)
    reply: memoryview | None = None


class ProbeServer:
    """Serves `routes` (path -> what to answer) on host:port from a daemon thread once `start`ed."""

    def __init__(
        self,
        routes: Mapping[str, Route],
        host: str,
        port: int,
        *,
        max_connections: int = 64,
        timeout: float = 5.0,
    ) -> None:
        self._routes = dict(routes)
        self._max = max_connections
        self._timeout = timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.create_server((host, port), family=family, backlog=128)  # OSError: in use
        self._listener.setblocking(False)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ)
        self._clients: dict[socket.socket, _Client] = {}  # in order of arrival: the first is the oldest
        self._accepting_after = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="renewals-http", daemon=True)

    def start(self) -> "ProbeServer":
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close every socket (waits for the thread, at most a second)."""
        self._stop.set()
        self._thread.join(timeout=1.0)

    @property
    def open_connections(self) -> int:
        return len(self._clients)

    def _serve(self) -> None:
        try:
            while not self._stop.is_set():
                now = time.monotonic()
                for client in [c for c in self._clients.values() if c.deadline <= now]:
                    self._drop(client)  # too slow: a slowloris, or a client that stopped reading
                wait = min((c.deadline for c in self._clients.values()), default=now + 0.5) - now
                for key, events in self._selector.select(timeout=max(0.0, min(wait, 0.5))):
                    if key.fileobj is self._listener:
                        self._accept()
                    else:
                        client = self._clients.get(key.fileobj)  # type: ignore[call-overload]
                        if client is not None:
                            self._on_ready(client, events)
        finally:
            for client in list(self._clients.values()):
                self._drop(client)
            self._selector.close()
            self._listener.close()

    def _accept(self) -> None:
        if time.monotonic() < self._accepting_after:
            return
        for _ in range(self._max):  # a burst at a time; the selector calls again for the rest
            try:
                sock, _address = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    self._accepting_after = time.monotonic() + 0.1  # out of descriptors: let others go first
                    if self._clients:
                        self._drop(next(iter(self._clients.values())))
                return  # ECONNABORTED and the like: that client is gone already
            if len(self._clients) >= self._max:
                self._drop(next(iter(self._clients.values())))  # the oldest makes room
            sock.setblocking(False)
            client = _Client(sock, time.monotonic() + self._timeout)
            self._clients[sock] = client
            self._selector.register(sock, selectors.EVENT_READ)

    def _on_ready(self, client: _Client, events: int) -> None:
        try:
            if client.reply is None and events & selectors.EVENT_READ:
                chunk = client.sock.recv(4096)
                if not chunk:
                    self._drop(client)
                    return
                client.received += chunk
                self._read(client)
            if client.reply is not None:
                sent = client.sock.send(client.reply)
                client.reply = client.reply[sent:]
                if not client.reply:
                    self._drop(client)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # reset by the peer, broken pipe: that client is gone
            self._drop(client)

    def _read(self, client: _Client) -> None:
        end = client.received.find(b"\r\n\r\n")
        if end < 0:
            if len(client.received) > MAX_HEAD:
                self._reply(client, Response(431, "text/plain", b"request head too large\n"), head_only=False)
            return
        request_line = bytes(client.received[: client.received.find(b"\r\n")]).decode("latin-1")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self._reply(client, Response(400, "text/plain", b"bad request\n"), head_only=False)
            return
        method, target = parts[0], parts[1].split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            self._reply(client, Response(405, "text/plain", b"only GET and HEAD\n"), head_only=False)
            return
        route = self._routes.get(target)
        known = ", ".join(sorted(self._routes))
        if route is None:
            response = Response(404, "text/plain", f"not found: try {known}\n".encode())
        else:
            try:
                response = route()
            except Exception as exc:  # a failing answer must not end the thread that serves the probes
                response = Response(500, "text/plain", f"{type(exc).__name__}\n".encode())
        self._reply(client, response, head_only=method == "HEAD")

    def _reply(self, client: _Client, response: Response, *, head_only: bool) -> None:
        head = (
            f"HTTP/1.1 {response.status} {_STATUS.get(response.status, '')}\r\n"
            f"Content-Type: {response.content_type}\r\nContent-Length: {len(response.body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode("latin-1")
        client.reply = memoryview(head if head_only else head + response.body)
        self._selector.modify(client.sock, selectors.EVENT_WRITE)

    def _drop(self, client: _Client) -> None:
        if self._clients.pop(client.sock, None) is None:
            return
        with suppress(KeyError, ValueError):  # not registered (any more)
            self._selector.unregister(client.sock)
        client.sock.close()
