"""A short-lived, synchronous pika session on the dead-letter queue.

Reading never acknowledges: every message read stays unacknowledged on this session until
it is removed (acknowledged) on purpose. When the session ends, or the process dies, the
broker puts every unacknowledged message back where it was (a classic queue keeps the
original order on requeue), so a read changes nothing and an interrupted replay loses nothing.
"""

from collections.abc import Iterator
from types import TracebackType
from typing import Any

# pika ships no type hints: its names are Any here.
import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.exceptions import (
    AMQPConnectionError,
    ChannelClosedByBroker,
    NackError,
    UnroutableError,
)

from worker.redaction import masked
from worker.tools.dead_letters.letter import PROPERTY_NAMES, DeadLetter

MAX_PREFETCH = 65535  # basic.qos counts in 16 bits; 0 means unbounded


class DeadLetterError(Exception):
    """Something an operator must hear about, in one line."""


class ReplayRefused(Exception):
    """The broker did not take a republished message (unroutable, nacked, no such exchange)."""


class DeadLetterQueue:
    """`with DeadLetterQueue(url, name) as queue:` connects; leaving the block disconnects."""

    def __init__(self, amqp_url: str, name: str, *, wait: float = 3.0) -> None:
        self.name = name
        self._url = amqp_url
        self._wait = wait
        self._connection: pika.BlockingConnection | None = None
        self._reading: BlockingChannel | None = None
        self._publishing: BlockingChannel | None = None

    def __enter__(self) -> "DeadLetterQueue":
        parameters = pika.URLParameters(self._url)
        parameters.connection_attempts = 1
        parameters.socket_timeout = 5
        parameters.blocked_connection_timeout = 60
        try:
            self._connection = pika.BlockingConnection(parameters)
        except (AMQPConnectionError, OSError) as exc:
            raise DeadLetterError(f"cannot reach the broker at {masked(self._url)}: {_why(exc)}") from None
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        """Close the connection: the broker requeues whatever was read but not removed."""
        if self._connection is not None and self._connection.is_open:
            self._connection.close()

    @property
    def broker(self) -> str:
        """The broker URL with its password masked."""
        return masked(self._url)

    def count(self) -> int:
        """Messages ready in the queue now."""
        try:
            return int(self._channel().queue_declare(self.name, passive=True).method.message_count)
        except ChannelClosedByBroker as exc:
            self._reading = None
            if exc.reply_code == 404:
                where, fix = masked(self._url), "`renewals topology --declare` creates it"
                raise DeadLetterError(f"queue {self.name} does not exist on {where} ({fix})") from None
            raise

    def read(self) -> Iterator[tuple[DeadLetter, int]]:
        """Every message in queue order with its delivery tag, none acknowledged.

        Bounded by the count at the start, so dead letters that arrive meanwhile (a replayed
        message failing again, say) wait for the next run.
        """
        total = self.count()
        if total == 0:
            return
        channel = self._channel()
        channel.basic_qos(prefetch_count=total if total <= MAX_PREFETCH else 0)
        for position, (method, properties, body) in enumerate(
            channel.consume(self.name, auto_ack=False, inactivity_timeout=self._wait), 1
        ):
            if method is None:  # another reader holds the rest
                return
            fields = {name: getattr(properties, name) for name in (*PROPERTY_NAMES, "headers")}
            yield DeadLetter.read(position, fields, body), method.delivery_tag
            if position >= total:
                return

    def remove(self, delivery_tag: int) -> None:
        """Acknowledge one message read: it leaves the queue for good."""
        self._channel().basic_ack(delivery_tag)

    def republish(self, exchange: str, routing_key: str, body: bytes, properties: dict[str, Any]) -> None:
        """Publish with `mandatory` and wait for the broker's confirm; ReplayRefused otherwise."""
        channel = self._publishing
        if channel is None or not channel.is_open:
            channel = self._publishing = self._open()
            channel.confirm_delivery()
        try:
            channel.basic_publish(
                exchange, routing_key, body, pika.BasicProperties(**properties), mandatory=True
            )
        except UnroutableError:
            raise ReplayRefused(
                f"unroutable: no queue is bound for {routing_key!r} on {exchange!r}"
            ) from None
        except NackError:
            raise ReplayRefused(f"the broker nacked the publish to {exchange!r}") from None
        except ChannelClosedByBroker as exc:
            self._publishing = None
            raise ReplayRefused(f"{exc.reply_code} {exc.reply_text}") from None

    def _channel(self) -> BlockingChannel:
        if self._reading is None or not self._reading.is_open:
            self._reading = self._open()
        return self._reading

    def _open(self) -> BlockingChannel:
        assert self._connection is not None, "use DeadLetterQueue in a with block"
        return self._connection.channel()


def _why(exc: BaseException) -> str:
    """pika wraps the socket error a level or two deep; the innermost text is the useful one."""
    while exc.args and isinstance(exc.args[0], BaseException):
        exc = exc.args[0]
    inner = getattr(exc, "exception", None)  # pika's socket-connect error keeps the OSError here
    if isinstance(inner, BaseException):
        exc = inner
    return str(exc) or type(exc).__name__
