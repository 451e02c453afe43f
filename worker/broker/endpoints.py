"""Where the broker is: one URL or several (the nodes of a cluster, separated by `;`), plain
`amqp://` or TLS `amqps://`, and how to open a connection to the first node that answers.

The worker and every command connect through here, so they all accept the same URLs, the
same TLS settings, and never print a password (`worker.redaction.masked`).
"""

import socket
import ssl
from contextlib import suppress
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlparse, urlsplit

from amqp.exceptions import AccessRefused, NotAllowed

from worker.broker.errors import BrokerError
from worker.broker.wire import Connection, FrameHandlerFactory
from worker.redaction import masked

DEFAULT_PORTS = {"amqp": 5672, "amqps": 5671}


class BrokerUnreachable(BrokerError, ConnectionError):
    """No node of the list accepted a connection; the message says why (per node, if several)."""

    def __init__(self, failures: list[tuple["Endpoint", str]]) -> None:
        if len(failures) == 1:
            text = failures[0][1]
        else:
            text = "; ".join(f"{endpoint}: {why}" for endpoint, why in failures)
        super().__init__(text)


class BrokerRefused(BrokerError):
    """A node answered and refused us: the login (user or password), or the vhost (missing, or
    no access to it). The nodes of a cluster share users and vhosts, so no retry and no other
    node can fix it; the message says what to fix."""


def refusal(exc: BaseException) -> str | None:
    """What to fix, if `exc` is the broker refusing the login or the vhost; None otherwise."""
    text = str(exc)
    if isinstance(exc, AccessRefused) and "Login was refused" in text:
        return "the broker refused the login: check the user and password in RENEWALS_AMQP_URL"
    if isinstance(exc, NotAllowed) and "vhost" in text and ("not found" in text or "refused" in text):
        return (
            "the broker refused the vhost (it does not exist, or this user has no access to it):"
            " check the vhost in RENEWALS_AMQP_URL, or create it and grant permissions"
            " (rabbitmqctl add_vhost, set_permissions)"
        )
    return None


@dataclass(frozen=True, slots=True)
class Tls:
    """TLS for `amqps://` URLs: the CA bundle that signed the broker's certificate (system CAs
    when unset), an optional client certificate and key, and the name the certificate must
    carry (the URL's host when unset). The host name is always checked."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.ca_file)
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        if self.cert_file:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One node: host, port, credentials, vhost, and whether to speak TLS."""

    url: str
    host: str
    port: int
    user: str
    password: str
    vhost: str
    tls: bool

    @classmethod
    def parse(cls, url: str) -> "Endpoint":
        """An AMQP URL as kombu reads one (percent-escapes undone; no vhost means "/"): the part
        after `scheme://` is read with HTTP URL rules, and the path without its first `/` is the
        vhost, so `amqp://h//` is the vhost "/" and `amqp://h/%2F` too."""
        scheme = urlsplit(url).scheme
        try:
            parts = urlparse("http://" + url[len(scheme) + 3 :])
            port = int(parts.port or DEFAULT_PORTS.get(scheme, 0))
        except ValueError:  # its message quotes what it could not read: part of a password, say
            raise ValueError(
                f"{masked(url)}: not a valid URL (percent-encode / ? # @ in a password)"
            ) from None
        if scheme not in DEFAULT_PORTS:
            raise ValueError(f"{masked(url)}: the scheme must be amqp:// or amqps://")
        return cls(
            url=url,
            host=unquote(parts.hostname or "") or "localhost",
            port=port,
            user=unquote(parts.username or "") or "guest",
            password=unquote(parts.password or "") or "guest",
            vhost=unquote(parts.path.removeprefix("/")) or "/",
            tls=scheme == "amqps",
        )

    def __str__(self) -> str:
        return masked(self.url)


@dataclass(frozen=True)
class Broker:
    """The broker's nodes and how to reach them; `connect` tries each node once, in turn."""

    endpoints: tuple[Endpoint, ...]
    tls: Tls = Tls()
    heartbeat: int = 0
    connect_timeout: float = 5.0

    @classmethod
    def from_urls(cls, urls: str, **options: Any) -> "Broker":
        """`amqp://a/vh;amqp://b/vh` (kombu's failover syntax) or a single URL."""
        endpoints = tuple(Endpoint.parse(url.strip()) for url in urls.split(";") if url.strip())
        if not endpoints:
            raise ValueError("no broker URL given")
        return cls(endpoints, **options)

    def __str__(self) -> str:
        return ";".join(str(endpoint) for endpoint in self.endpoints)

    def connect(
        self, *, first: int = 0, frame_handler: FrameHandlerFactory | None = None
    ) -> tuple[Connection, int]:
        """A connection to the first node, from `first` on (wrapping around), that accepts;
        with the index of that node. BrokerUnreachable, naming each node's error, if none does."""
        failures = []
        for step in range(len(self.endpoints)):
            index = (first + step) % len(self.endpoints)
            endpoint = self.endpoints[index]
            try:
                return self._open(endpoint, frame_handler), index
            except Exception as exc:  # whatever went wrong, it went wrong with this node
                fix = refusal(exc)
                if fix is not None:
                    raise BrokerRefused(f"{endpoint}: {fix} (the broker said {_why(exc)})") from None
                failures.append((endpoint, _why(exc)))
        raise BrokerUnreachable(failures)

    def _open(self, endpoint: Endpoint, frame_handler: FrameHandlerFactory | None) -> Connection:
        options: dict[str, Any] = {}
        if frame_handler is not None:
            options["frame_handler"] = frame_handler
        if endpoint.tls:
            tls = self.tls
            options["ssl"] = {"context": tls.context(), "server_hostname": tls.server_name or endpoint.host}
        connection = Connection(
            host=f"{endpoint.host}:{endpoint.port}",
            userid=endpoint.user,
            password=endpoint.password,
            virtual_host=endpoint.vhost,
            heartbeat=self.heartbeat,
            connect_timeout=self.connect_timeout,
            # py-amqp sets TCP_USER_TIMEOUT to 1 s, which kills a connection the broker has
            # blocked (memory or disk alarm) after one second; heartbeats find dead peers instead.
            socket_settings={socket.TCP_USER_TIMEOUT: 0},
            **options,
        )
        try:
            connection.connect()
        except BaseException:
            _close_quietly(connection)
            raise
        return connection


def from_settings(settings: Any, *, heartbeat: int | None = None) -> Broker:
    """The broker as the settings describe it (URL list, TLS files, heartbeat)."""
    return Broker.from_urls(
        settings.amqp_url,
        tls=Tls(
            settings.amqp_ca_file,
            settings.amqp_cert_file,
            settings.amqp_key_file,
            settings.amqp_server_name,
        ),
        heartbeat=settings.heartbeat if heartbeat is None else heartbeat,
    )


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return masked(f"{type(exc).__name__}: {text}")


def _close_quietly(connection: Connection) -> None:
    with suppress(Exception):  # the connection never opened; there is nothing left to close
        connection.collect()
