"""The session's broker links over py-amqp: the worker's queue (`AmqpDeliveries`) and the
dead-letter queue (`AmqpLetters`), each on a connection of its own whose deliveries a
`DeliveryReader` reads; the third link, publishing, is `ConfirmingPublisher`.

They implement `worker.service.ports`. Deliveries are taken from the reader's list between
reads, never handled inside `drain_events`: the loop that reads also acknowledges.

A consumer the broker cancels (its queue deleted, by `renewals topology --migrate --force` or
by hand: RabbitMQ's consumer-cancel notification, a server basic.cancel) is noted, never
raised from inside the read: what had arrived is still handed out, and then `collect` or
`take` raises ConsumerLost, which ends the session (the runtime connects again, declares
again and subscribes again).

Whatever py-amqp or the socket raise when the connection goes (`LOSSES`) leaves a link as
`worker.messaging.BrokerLost`, its `__cause__` the original: the running worker knows no
error of py-amqp's.
"""

import functools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, ParamSpec, TypeVar

from amqp.exceptions import AccessRefused, NotFound, RecoverableConnectionError
from amqp.exceptions import ConnectionError as AmqpConnectionError

from worker.broker.publisher import ConfirmingPublisher
from worker.broker.topology import Topology, declare, holding_queue
from worker.broker.wire import Connection, DeliveryReader, read_by_the_reader
from worker.messaging import BrokerLost, ConsumerLost, Delivery, MigrationUnderWay, Outgoing, QueueState, Sent

# What reconnecting (with backoff) can cure. A refused permission counts: an operator can fix
# it while the worker waits. A mismatched queue (PreconditionFailed) cannot, and stops it.
LOSSES = (OSError, AmqpConnectionError, RecoverableConnectionError, AccessRefused)

# How long `read_ahead` waits on the socket before it asks again whether the COMMIT is done.
_READ_AHEAD_WAIT = 0.001

_P = ParamSpec("_P")
_R = TypeVar("_R")


@contextmanager
def losses_translated() -> Iterator[None]:
    """py-amqp's and the socket's errors of a lost connection, raised as BrokerLost."""
    try:
        yield
    except LOSSES as exc:
        raise BrokerLost(str(exc)) from exc


def _translated(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """`method`, its lost-connection errors raised as BrokerLost (no cost unless one is raised)."""

    @functools.wraps(method)
    def translated(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(*args, **kwargs)
        except LOSSES as exc:
            raise BrokerLost(str(exc)) from exc

    return translated


def queue_state(connection: Connection, name: str) -> QueueState | None:
    """`name`'s state, or None if it does not exist (asked on a channel of its own, since the
    broker closes the channel that asks for a queue it does not hold)."""
    channel = connection.channel()
    try:
        _, ready, consumers = channel.queue_declare(name, passive=True)
    except NotFound:
        return None
    channel.close()
    return QueueState(int(ready), int(consumers))


def being_migrated(connection: Connection, plan: Topology) -> None:
    """MigrationUnderWay if a queue of the plan is absent while its holding queue exists: the
    migration is between deleting it and declaring it again, and declaring it now (with this
    worker's arguments, perhaps not the migration's) would make the migration fail."""
    for queue in plan.queues:
        holding = holding_queue(queue.name)
        if queue_state(connection, queue.name) is None and queue_state(connection, holding) is not None:
            raise MigrationUnderWay(
                f"{queue.name} is being migrated ({holding} holds its messages): waiting for"
                " `renewals topology --migrate` to declare it again (if none is running, run it"
                " again: it resumes)"
            )


class AmqpDeliveries:
    """The worker's queue: its topology declared, `prefetch` deliveries in hand at most, taken
    in batches of up to `batch_size`, gathered for at most `max_wait` seconds and ended early
    by a lull of `lull` seconds."""

    def __init__(
        self,
        connection: Connection,
        reader: DeliveryReader,
        topology: Topology,
        *,
        queue: str,
        prefetch: int,
        batch_size: int,
        lull: float,
        max_wait: float,
    ) -> None:
        self._connection = connection
        self._arrived = reader.arrived
        self._queue = queue
        self._batch_size, self._lull, self._max_wait = batch_size, lull, max_wait
        being_migrated(connection, topology)
        self._channel = connection.channel()
        declare(self._channel, topology)
        self._channel.basic_qos(0, prefetch, False)
        self._consumer_tag: str | None = None
        self.lost: str | None = None

    @_translated
    def consume(self) -> None:
        if self._consumer_tag is None:
            self._consumer_tag = self._channel.basic_consume(
                self._queue, callback=read_by_the_reader, on_cancel=self._cancelled_by_the_broker
            )

    @_translated
    def cancel(self) -> None:
        if self._consumer_tag is not None:
            self._channel.basic_cancel(self._consumer_tag)
            self._consumer_tag = None

    @_translated
    def state(self) -> QueueState | None:
        """The worker queue's state as the broker reports it now; None if it is gone."""
        return queue_state(self._connection, self._queue)

    @_translated
    def collect(self, first_wait: float) -> list[Delivery]:
        """Wait up to `first_wait` for one delivery, then take what has arrived (or arrives
        within the lull), up to the batch size and for at most the batch's longest wait.
        ConsumerLost once the broker has cancelled the consumer and nothing is left in hand."""
        arrived, connection, size = self._arrived, self._connection, self._batch_size
        connection.drain_buffered()
        if not arrived:
            with suppress(TimeoutError):
                connection.drain_events(timeout=first_wait)
            if not arrived:
                if self.lost is not None:
                    raise ConsumerLost(self.lost)
                return []
        deadline = time.monotonic() + self._max_wait
        while len(arrived) < size and time.monotonic() < deadline:
            connection.drain_buffered()
            if len(arrived) >= size:
                break
            try:
                connection.drain_events(timeout=self._lull)
            except TimeoutError:
                break
        batch = arrived[:size]
        del arrived[:size]
        return batch

    @_translated
    def read_ahead(self, until_false: Callable[[], bool]) -> None:
        arrived, connection = self._arrived, self._connection
        while until_false() and len(arrived) < self._batch_size:
            connection.drain_buffered()
            with suppress(TimeoutError):
                connection.drain_events(timeout=_READ_AHEAD_WAIT)

    @_translated
    def acknowledge(self, last_delivery_tag: int) -> None:
        self._channel.basic_ack(last_delivery_tag, multiple=True)

    def _cancelled_by_the_broker(self, _consumer_tag: Any) -> None:
        """py-amqp's `on_cancel`, called inside a read: only noted (the loop acts on it)."""
        self._consumer_tag = None
        self.lost = f"the broker cancelled the consumer of {self._queue} (the queue was deleted?)"

    @_translated
    def idle(self, seconds: float) -> None:
        with suppress(TimeoutError):
            self._connection.drain_events(timeout=seconds)

    @_translated
    def keep_alive(self) -> None:
        self._connection.keep_alive()

    @_translated
    def close(self) -> None:
        self._connection.collect()


class AmqpLetters:
    """The dead-letter queue, `prefetch` letters in hand at most. Its connection is read at
    most every `read_every` seconds by `keep_alive` (which the session calls far more often)."""

    def __init__(
        self, connection: Connection, reader: DeliveryReader, *, queue: str, prefetch: int, read_every: float
    ) -> None:
        self._connection = connection
        self._arrived = reader.arrived
        self._queue = queue
        self._read_every = read_every
        self._channel = connection.channel()
        self._channel.basic_qos(0, prefetch, False)
        self._consumer_tag: str | None = None
        self._next_read = 0.0
        self._lost: str | None = None

    @_translated
    def resume(self) -> None:
        if self._consumer_tag is None:
            self._consumer_tag = self._channel.basic_consume(
                self._queue, callback=read_by_the_reader, on_cancel=self._cancelled_by_the_broker
            )

    def _cancelled_by_the_broker(self, _consumer_tag: Any) -> None:
        self._consumer_tag = None
        self._lost = f"the broker cancelled the consumer of {self._queue} (the queue was deleted?)"

    @_translated
    def pause(self) -> None:
        if self._consumer_tag is not None:
            self._channel.basic_cancel(self._consumer_tag)
            self._consumer_tag = None

    @_translated
    def take(self, wait: float = 0.0) -> list[Delivery]:
        """The letters that have arrived; ConsumerLost once the broker has cancelled the
        consumer and none is left in hand."""
        self._read(wait)
        letters = list(self._arrived)
        del self._arrived[:]
        if not letters and self._lost is not None:
            raise ConsumerLost(self._lost)
        return letters

    @_translated
    def acknowledge(self, last_delivery_tag: int) -> None:
        self._channel.basic_ack(last_delivery_tag, multiple=True)

    @_translated
    def keep_alive(self) -> None:
        """Read what the broker sent (its heartbeats among it) and send ours, at most every
        `read_every` seconds. `Connection.keep_alive` reads too: one read a tick, not two."""
        if time.monotonic() >= self._next_read:
            self._next_read = time.monotonic() + self._read_every
            self._connection.keep_alive()

    @_translated
    def close(self) -> None:
        self._connection.collect()

    def _read(self, wait: float) -> None:
        self._connection.drain_buffered()
        with suppress(TimeoutError):  # nothing there
            self._connection.drain_events(timeout=wait)
        self._connection.drain_buffered()


class AmqpPublishing:
    """The session's publisher: `ConfirmingPublisher`, its lost-connection errors translated."""

    def __init__(self, publisher: ConfirmingPublisher) -> None:
        self._publisher = publisher

    @_translated
    def send(self, messages: Sequence[Outgoing]) -> Sent:
        return self._publisher.send(messages)

    @_translated
    def wait_for(self, tag: int, *, while_waiting: Callable[[], None]) -> None:
        self._publisher.wait_for(tag, while_waiting=while_waiting)

    @_translated
    def keep_alive(self) -> None:
        self._publisher.keep_alive()

    @_translated
    def close(self) -> None:
        self._publisher.close()
