"""A loopback TCP proxy a test can cut: the broker seems gone to whoever connects through it
(every connection dropped, new ones refused) while the broker itself runs on for everyone else,
on any RabbitMQ version."""

import selectors
import socket
import threading
from contextlib import suppress
from urllib.parse import urlsplit


class TcpProxy:
    """`with TcpProxy(upstream_url) as proxy:` forwards 127.0.0.1:`proxy.port` to the URL's host
    and port; `cut()` drops every connection and refuses new ones until `restore()`."""

    def __init__(self, upstream_url: str) -> None:
        parts = urlsplit(upstream_url)
        self._upstream = (parts.hostname or "127.0.0.1", parts.port or 5672)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._url = parts._replace(netloc=parts.netloc.rsplit(":", 1)[0] + f":{self.port}")
        self._open = threading.Event()
        self._open.set()
        self._stop = threading.Event()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self.accepted = 0  # connections forwarded so far (a test counts connects with it)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self) -> str:
        """The upstream URL with the proxy's port."""
        return self._url.geturl()

    def __enter__(self) -> "TcpProxy":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self.cut()
        self._listener.close()
        self._thread.join(timeout=5)

    def cut(self) -> None:
        """Drop every connection now, and refuse new ones (accepted, then closed at once)."""
        self._open.clear()
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for end in pair:
                with suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()

    def restore(self) -> None:
        self._open.set()

    def _serve(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if not self._open.is_set():
                client.close()
                continue
            try:
                upstream = socket.create_connection(self._upstream, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
                self.accepted += 1
            threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes (or the proxy cuts both)."""
    selector = selectors.DefaultSelector()
    for end in (a, b):
        end.setblocking(False)
        selector.register(end, selectors.EVENT_READ)
    other = {a: b, b: a}
    try:
        while True:
            for key, _ in selector.select(timeout=1.0):
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                data = source.recv(65536)
                if not data:
                    return
                other[source].setblocking(True)
                other[source].sendall(data)
                other[source].setblocking(False)
    except (OSError, ValueError):
        return
    finally:
        selector.close()
        for end in (a, b):
            with suppress(OSError):
                end.close()
