"""A short-lived, synchronous session on the dead-letter queue, through the worker's own broker
layer (the same URL lists, TLS settings and defensive reading of properties).

Reading never acknowledges: every message read stays unacknowledged on this session until
it is removed (acknowledged) on purpose. When the session ends, or the process dies, the
broker puts every unacknowledged message back where it was, so a read changes nothing and an
interrupted replay loses nothing.
"""

import time
from collections.abc import Iterator
from contextlib import suppress
from types import TracebackType
from typing import Any

import amqp
from amqp.exceptions import AMQPError, NotFound

from worker.broker.endpoints import Broker, BrokerUnreachable
from worker.broker.messages import Delivery, Outgoing
from worker.broker.publisher import ConfirmingPublisher, PublishFailed
from worker.broker.wire import Connection, DeliveryReader, read_by_the_reader
from worker.logs import Logger
from worker.tools.dead_letters.letter import PROPERTY_NAMES, DeadLetter

MAX_PREFETCH = 65535  # basic.qos counts in 16 bits; 0 means unbounded
CONFIRM_TIMEOUT = 15.0
GIVE_BACK_WAIT = 3.0  # seconds to wait, at the end, for the broker to take back what was read


class DeadLetterError(Exception):
    """Something an operator must hear about, in one line."""


class ReplayRefused(Exception):
    """The broker did not take a republished message (unroutable, nacked, no such exchange)."""


class DeadLetterQueue:
    """`with DeadLetterQueue(broker, name) as queue:` connects; leaving the block disconnects."""

    def __init__(self, broker: Broker, name: str, *, log: Logger, wait: float = 3.0) -> None:
        self.name = name
        self._broker = broker
        self._wait = wait
        self._log = log
        self._reader = DeliveryReader()
        self._connection: Connection | None = None
        self._reading: amqp.Channel | None = None
        self._publisher: ConfirmingPublisher | None = None
        self._ready = 0  # letters that are in the queue, or will be again once this session ends

    def __enter__(self) -> "DeadLetterQueue":
        try:
            self._connection, _ = self._broker.connect(frame_handler=self._reader.frame_handler)
        except BrokerUnreachable as exc:
            raise DeadLetterError(f"cannot reach the broker at {self._broker}: {exc}") from None
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        """Close the connection: the broker requeues whatever was read but not removed."""
        if self._connection is not None:
            with suppress(Exception):
                self._give_back()
            with suppress(Exception):
                self._connection.close()
            with suppress(Exception):
                self._connection.collect()

    @property
    def broker(self) -> str:
        """The broker's URLs with their passwords masked."""
        return str(self._broker)

    def count(self) -> int:
        """Messages ready in the queue now."""
        try:
            return int(self._channel().queue_declare(self.name, passive=True)[1])
        except NotFound:
            self._reading = None
            fix = "`renewals topology --declare` creates it"
            raise DeadLetterError(f"queue {self.name} does not exist on {self.broker} ({fix})") from None

    def read(self) -> Iterator[tuple[DeadLetter, int]]:
        """Every message in queue order with its delivery tag, none acknowledged.

        Bounded by the count at the start, so dead letters that arrive meanwhile (a replayed
        message failing again, say) wait for the next run.
        """
        total = self._ready = self.count()
        if total == 0:
            return
        channel = self._channel()
        channel.basic_qos(0, total if total <= MAX_PREFETCH else 0, False)
        channel.basic_consume(self.name, callback=read_by_the_reader)
        arrived = self._reader.arrived
        for position in range(1, total + 1):
            if not arrived and not self._next_delivery():
                return  # another reader holds the rest
            delivery = arrived.pop(0)
            yield _letter(position, delivery), delivery.delivery_tag

    def remove(self, delivery_tag: int) -> None:
        """Acknowledge one message read: it leaves the queue for good."""
        self._channel().basic_ack(delivery_tag)
        self._ready -= 1

    def republish(self, exchange: str, routing_key: str, body: bytes, properties: dict[str, Any]) -> None:
        """Publish with `mandatory` and wait for the broker's confirm; ReplayRefused otherwise."""
        assert self._connection is not None, "use DeadLetterQueue in a with block"
        if self._publisher is None:
            self._publisher = ConfirmingPublisher(
                self._connection, confirm_timeout=CONFIRM_TIMEOUT, log=self._log
            )
        try:
            self._publisher.publish([Outgoing(exchange, routing_key, body, _amqp_names(properties))])
        except PublishFailed as exc:
            raise ReplayRefused(str(exc)) from None
        except AMQPError as exc:  # the channel was closed by the broker (no such exchange, say)
            self._publisher = None
            raise ReplayRefused(
                f"{getattr(exc, 'reply_code', '')} {getattr(exc, 'reply_text', exc)}".strip()
            ) from None

    def _give_back(self) -> None:
        """Close the reading channel, so the broker takes back what was read and not removed,
        and wait (a little) until it has: a quorum queue does so a moment after the channel
        closed, and a command started in that moment would find the queue short of them."""
        if self._reading is None:
            return
        self._reading.close()
        self._reading = None
        deadline = time.monotonic() + GIVE_BACK_WAIT
        while self.count() < self._ready and time.monotonic() < deadline:
            time.sleep(0.02)

    def _next_delivery(self) -> bool:
        """Wait up to the inactivity timeout for the next delivery."""
        assert self._connection is not None
        deadline = time.monotonic() + self._wait
        while not self._reader.arrived:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                self._connection.drain_events(timeout=remaining)
            except TimeoutError:
                return False
            self._connection.drain_buffered()
        return True

    def _channel(self) -> amqp.Channel:
        assert self._connection is not None, "use DeadLetterQueue in a with block"
        if self._reading is None or not self._reading.is_open:
            self._reading = self._connection.channel()
        return self._reading


def _letter(position: int, delivery: Delivery) -> DeadLetter:
    properties = {name: delivery.properties.get(name) for name in PROPERTY_NAMES}
    properties["headers"] = delivery.properties.get("application_headers")
    return DeadLetter.read(position, properties, bytes(delivery.body), delivery.problem)


def _amqp_names(properties: dict[str, Any]) -> dict[str, Any]:
    """pika's property names (what DeadLetter speaks) as py-amqp's."""
    converted = {name: value for name, value in properties.items() if name != "headers" and value is not None}
    if properties.get("headers") is not None:
        converted["application_headers"] = properties["headers"]
    return converted
