"""Reading a queue without taking anything from it (`renewals notifications` on the unrouted
queue), through the worker's own broker layer (the same URL lists, TLS settings and defensive
reading of properties).

Nothing read is ever acknowledged. When the session ends, or the process dies, the broker
puts every message back where it was, so a read changes nothing. On RabbitMQ 4.x every such
give-back counts as a return; the queues read here have no delivery limit there
(docs/domain.md, "Deliveries on each RabbitMQ series"), so reading them costs nothing.
"""

import time
from collections.abc import Iterator

import amqp
from amqp.exceptions import NotFound

from worker.boundary import aside, guarded
from worker.broker.endpoints import Broker
from worker.broker.wire import DeliveryReader, read_by_the_reader
from worker.dead_letters.letter import PROPERTY_NAMES, DeadLetter
from worker.failures import missing_on_broker
from worker.logs import Logger
from worker.messaging import Delivery
from worker.tools.connection import ToolConnection
from worker.tools.errors import ToolError

MAX_PREFETCH = 65535  # basic.qos counts in 16 bits; 0 means unbounded
GIVE_BACK_WAIT = 3.0  # seconds to wait, at the end, for the broker to take back what was read


class PeekError(ToolError):
    """Something an operator must hear about, in one line."""


class QueuePeek(ToolConnection):
    """`with QueuePeek(broker, name) as queue:` connects; leaving the block disconnects."""

    unreachable = PeekError

    def __init__(self, broker: Broker, name: str, *, log: Logger, wait: float = 3.0) -> None:
        self._reader = DeliveryReader()
        super().__init__(broker, frame_handler=self._reader.frame_handler)
        self.name = name
        self._wait = wait
        self._log = log
        self._reading: amqp.Channel | None = None
        self._ready = 0  # letters that are in the queue, or will be again once this session ends

    def _before_closing(self) -> None:
        """The broker requeues whatever was read but not removed: wait for it to."""
        self._give_back()

    def count(self) -> int:
        """Messages ready in the queue now."""
        try:
            return int(self._channel().queue_declare(self.name, passive=True)[1])
        except NotFound:
            self._reading = None
            raise PeekError(missing_on_broker("queue", self.name, self.broker)) from None

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
            yield read_letter(position, delivery), delivery.delivery_tag

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
        assert self._connection is not None, "use QueuePeek in a with block"
        if self._reading is None or not self._reading.is_open:
            self._reading = self._connection.channel()
        return self._reading


def read_letter(position: int, delivery: Delivery) -> DeadLetter:
    """The message as the tools read one; one that cannot be read is shown with its body and
    why, its properties and headers left out."""
    return guarded(
        lambda: _read(position, delivery),
        lambda why: DeadLetter.read(position, {}, bytes(delivery.body), aside(why)),
    )


def _read(position: int, delivery: Delivery) -> DeadLetter:
    properties = {name: delivery.properties.get(name) for name in PROPERTY_NAMES}
    properties["headers"] = delivery.properties.get("application_headers")
    return DeadLetter.read(position, properties, bytes(delivery.body), delivery.problem)
