"""py-amqp connections with the reading path cut to what the worker needs.

py-amqp stays the client (handshake, channels, methods, heartbeats, writing). Through its two
documented extension points, the transport class and the frame handler, this module changes
how bytes come in:

- The socket is read in large chunks, and every frame already buffered is parsed without
  another system call (py-amqp reads each frame with three exact-size `recv` calls and sets
  the socket timeout twice around it).
- Deliveries on a consuming channel (basic.deliver, its content header and body frames)
  become `Delivery` objects directly. Their properties are decoded defensively: a property
  or header table that cannot be decoded (a string or a header name that is not UTF-8, a
  timestamp out of range, a malformed table) marks that one delivery with a `problem` instead of raising out
  of the connection and taking the process down.
- Bodies are never decompressed or decoded: a `compression` header or a content encoding
  is the worker's to judge, on the raw bytes.
- A body of several frames is copied into one buffer of its declared size as its frames
  arrive, never gathered and then joined: a 40 MB body costs 40 MB, not 80.

The py-amqp internals this needs are listed, and checked at import, in `amqp_private`.
"""

import socket
import ssl
import time
from collections.abc import Callable
from contextlib import suppress
from struct import error as StructError
from struct import pack, unpack_from
from typing import Any

import amqp
from amqp.exceptions import FrameSyntaxError, UnexpectedFrame

from worker.broker.amqp_private import (
    SSLTransport,
    TCPTransport,
    decode_properties_basic,
    default_frame_handler,
)
from worker.messaging import Delivery

_CHUNK = 256 * 1024  # bytes asked of the socket per read
_FRAME_END = 0xCE
_DELIVER = pack(">HH", 60, 60)  # basic.deliver
MAX_PROBLEM = 300
_MAX_PREALLOCATED = 512 * 1024 * 1024  # RabbitMQ's largest max_message_size; beyond, the buffer grows

Frame = tuple[int, int, bytes]
FrameHandlerFactory = Callable[[Any, Callable[..., Any]], Callable[[Frame], Any]]


class _Buffered:
    """Frame reading over a buffer of whatever the socket had (mixed into py-amqp's transports)."""

    _buffer: bytearray
    _quick_recv: Callable[[int], bytes]

    def _start_buffer(self) -> None:
        self._buffer = bytearray()
        self._read_buffer = b""  # py-amqp's own buffer: unused from here on

    def frame_ready(self) -> bool:
        """True if a whole frame is buffered (reading it needs no system call)."""
        buffer = self._buffer
        return len(buffer) >= 7 and len(buffer) >= 8 + unpack_from(">I", buffer, 3)[0]

    def read_frame(self, unpack: Any = None) -> Frame:
        """One frame; on a socket timeout nothing is consumed, so the next call resumes."""
        self._fill(7)
        frame_type, channel, size = unpack_from(">BHI", self._buffer, 0)
        self._fill(8 + size)
        buffer = self._buffer
        if buffer[7 + size] != _FRAME_END:
            raise UnexpectedFrame(f"Received frame_end {buffer[7 + size]:#04x} while expecting 0xce")
        payload = bytes(buffer[7 : 7 + size])
        del buffer[: 8 + size]
        return frame_type, channel, payload

    def _fill(self, wanted: int) -> None:
        buffer = self._buffer
        while len(buffer) < wanted:
            try:
                chunk = self._quick_recv(max(_CHUNK, wanted - len(buffer)))
            except ssl.SSLWantReadError:
                raise TimeoutError("nothing to read yet") from None
            except InterruptedError:
                continue
            except BlockingIOError:  # a zero timeout (py-amqp polls so): nothing there yet
                raise TimeoutError("nothing to read yet") from None
            if not chunk:
                raise OSError("Server unexpectedly closed connection")
            buffer += chunk


class BufferedTCPTransport(_Buffered, TCPTransport):  # type: ignore[misc]  # py-amqp is untyped
    def _setup_transport(self) -> None:
        super()._setup_transport()
        self._start_buffer()


class BufferedSSLTransport(_Buffered, SSLTransport):  # type: ignore[misc]  # py-amqp is untyped
    """TLS through an `ssl.SSLContext` made by `endpoints.Tls` (host name always checked)."""

    def _setup_transport(self) -> None:
        super()._setup_transport()
        self._start_buffer()

    def _wrap_socket(self, sock: socket.socket, **options: Any) -> ssl.SSLSocket:
        """`options` is the `ssl` dict `endpoints.Broker` gives the connection: py-amqp passes
        its items here as keyword arguments (`context`, `server_hostname`)."""
        context: ssl.SSLContext = options["context"]
        return context.wrap_socket(
            sock, server_hostname=options["server_hostname"], do_handshake_on_connect=False
        )


class Connection(amqp.Connection):  # type: ignore[misc]  # py-amqp is untyped
    """A py-amqp connection over a buffered transport."""

    _sent_seen = -1  # `bytes_sent` (py-amqp counts frames) when we last looked
    _sent_at = 0.0  # when it last changed, or we last sent a heartbeat

    def Transport(  # the name py-amqp calls
        self,
        host: str,
        connect_timeout: float,
        ssl: Any = False,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
        socket_settings: Any = None,
        **kwargs: Any,
    ) -> Any:
        options = {
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "write_timeout": write_timeout,
            "socket_settings": socket_settings,
            **kwargs,
        }
        if ssl:
            return BufferedSSLTransport(host, ssl=ssl, **options)
        return BufferedTCPTransport(host, **options)

    def blocking_read(self, timeout: float | None = None) -> Any:
        transport = self.transport
        if transport.frame_ready():  # no system call, no socket timeout to set and restore
            return self.on_inbound_frame(transport.read_frame())
        with transport.having_timeout(timeout):
            frame = transport.read_frame()
        return self.on_inbound_frame(frame)

    def drain_events(self, timeout: float | None = None) -> None:
        """py-amqp's, except that `timeout` bounds the whole call, not each frame read: a broker
        sending heartbeats more often than `timeout` would otherwise keep a caller that waits for
        a delivery from ever getting control back (to send its own heartbeats, for one).
        TimeoutError once `timeout` has passed and nothing more is there to read."""
        if timeout is None:
            while not self.blocking_read(None):
                pass
            return
        deadline = time.monotonic() + timeout
        # Past the deadline, reads no longer wait: what has arrived is still read (a large body
        # keeps coming), and the first read that finds nothing raises TimeoutError.
        while not self.blocking_read(max(deadline - time.monotonic(), 0.0)):
            pass

    def drain_buffered(self) -> None:
        """Handle every frame already buffered, without waiting."""
        transport = self.transport
        while transport.frame_ready():
            self.on_inbound_frame(transport.read_frame())

    def poll(self) -> None:
        """Handle whatever the broker has sent, without waiting. A connection that nobody reads
        while it is idle (the publishing one, between batches) would otherwise look dead to
        py-amqp's heartbeat check, which counts only what was read, and be dropped after two
        heartbeat intervals although the broker's heartbeats sit in the socket."""
        self.drain_buffered()
        with suppress(TimeoutError):
            self.drain_events(timeout=0)

    def keep_alive(self) -> None:
        """Call at least once a second, busy or idle: reads what the broker sent (`poll`),
        sends a heartbeat once nothing was sent for half the interval (as the AMQP spec advises;
        py-amqp's `heartbeat_tick` waits a whole interval, which a broker with a short timeout
        already counts as missed), and lets py-amqp check that the broker's heartbeats come."""
        self.poll()
        if self.heartbeat:
            now = time.monotonic()
            if self.bytes_sent != self._sent_seen:
                self._sent_seen, self._sent_at = self.bytes_sent, now
            elif now - self._sent_at >= self.heartbeat / 2:
                self.send_heartbeat()
                self._sent_at = now
        self.heartbeat_tick()


def read_by_the_reader(message: Any) -> None:  # pragma: no cover - never called
    """The callback `basic_consume` insists on. The consumer's deliveries never reach it: the
    DeliveryReader's frame handler takes them first."""
    raise AssertionError("deliveries are read by the DeliveryReader, not by py-amqp's consumer")


class DeliveryReader:
    """Turns the deliveries of every consumer on a connection into `Delivery` objects in
    `arrived`; every other frame goes to py-amqp as usual. Pass `reader.frame_handler` as the
    connection's `frame_handler`."""

    def __init__(self) -> None:
        self.arrived: list[Delivery] = []

    def frame_handler(self, connection: Any, callback: Callable[..., Any]) -> Callable[[Frame], Any]:
        others = default_frame_handler(connection, callback)
        partial: dict[int, _Assembling] = {}
        arrived = self.arrived

        def on_frame(frame: Frame) -> bool:
            frame_type, channel, payload = frame
            assembling = partial.get(channel)
            if assembling is not None:
                connection.bytes_recv += 1
                if frame_type == 8:
                    return False
                if not assembling.add(frame_type, payload):
                    return False
                del partial[channel]
                arrived.append(assembling.delivery())
                return True
            if frame_type == 1 and payload[:4] == _DELIVER:
                connection.bytes_recv += 1
                partial[channel] = _Assembling(payload)
                return False
            return bool(others(frame))

        return on_frame


class _Assembling:
    """One delivery between its method frame and its last body frame."""

    __slots__ = (
        "body",
        "buffer",
        "exchange",
        "expect",
        "problem",
        "properties",
        "received",
        "redelivered",
        "routing_key",
        "size",
        "tag",
    )  # fmt: skip

    def __init__(self, payload: bytes) -> None:
        try:
            offset = 4
            offset += 1 + payload[offset]  # consumer tag: the worker has one consumer per channel
            (self.tag,) = unpack_from(">Q", payload, offset)
            self.redelivered = bool(payload[offset + 8] & 1)
            offset += 9
            self.exchange, offset = _short_string(payload, offset)
            self.routing_key, offset = _short_string(payload, offset)
        except (IndexError, StructError) as exc:
            raise _malformed("basic.deliver", exc) from None
        self.properties: dict[str, Any] = {}
        self.problem: str | None = None
        self.body = b""
        self.buffer: bytearray | None = None  # a body of several frames, filled in place
        self.size = self.received = 0
        self.expect = 2

    def add(self, frame_type: int, payload: bytes) -> bool:
        """Take the next frame; True once the delivery is complete."""
        if frame_type != self.expect:
            raise UnexpectedFrame(f"Received frame {frame_type} while expecting type: {self.expect}")
        if frame_type == 2:
            try:
                (self.size,) = unpack_from(">Q", payload, 4)
            except StructError as exc:
                raise _malformed("content header", exc) from None
            try:
                self.properties = decode_properties_basic(payload, 12)[0]
                _check_names(self.properties.get("application_headers"))
            except Exception as exc:  # any property py-amqp cannot decode: this delivery's problem only
                self.properties = {}
                self.problem = f"{type(exc).__name__}: {exc}"[:MAX_PROBLEM]
            self.expect = 3
        elif self.received == 0 and len(payload) >= self.size:
            self.body = payload  # the whole body in one frame: kept as it came
            self.received = len(payload)
        else:
            if self.buffer is None:
                self.buffer = bytearray(min(self.size, _MAX_PREALLOCATED))
            end = self.received + len(payload)
            self.buffer[self.received : end] = payload
            self.received = end
        return self.received >= self.size

    def delivery(self) -> Delivery:
        body = self.body if self.buffer is None else self.buffer  # read-only from here on
        return Delivery(
            body, self.properties, self.exchange, self.routing_key, self.tag, self.redelivered, self.problem
        )


def _malformed(what: str, error: Exception) -> FrameSyntaxError:
    """A frame only a broker breaking AMQP could send: the connection cannot be trusted, and
    the session ends as when a connection is lost (the runtime reconnects)."""
    return FrameSyntaxError(f"a malformed {what} frame from the broker ({type(error).__name__}: {error})")


def _check_names(headers: Any) -> None:
    """ValueError if a table, at any depth, has a name that is not UTF-8 (py-amqp leaves such a
    name as bytes, where every reader of headers expects text)."""
    pending = [headers]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            for name, item in value.items():
                if not isinstance(name, str):
                    raise ValueError(f"header name {name!r} is not UTF-8")
                pending.append(item)
        elif isinstance(value, list):
            pending.extend(value)


def _short_string(payload: bytes, offset: int) -> tuple[str, int]:
    length = payload[offset]
    text = payload[offset + 1 : offset + 1 + length].decode("utf-8", "replace")
    return text, offset + 1 + length
