"""The session's broker links over py-amqp: the worker's queue (`AmqpDeliveries`) and the
dead-letter queue (`AmqpLetters`), each on a connection of its own whose deliveries a
`DeliveryReader` reads; the third link, publishing, is `ConfirmingPublisher`.

They implement `worker.service.ports`. Deliveries are taken from the reader's list between
reads, never handled inside `drain_events`: the loop that reads also acknowledges.
"""

import time
from contextlib import suppress

from worker.broker.messages import Delivery
from worker.broker.topology import Topology, declare
from worker.broker.wire import Connection, DeliveryReader, read_by_the_reader


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
        self._channel = connection.channel()
        declare(self._channel, topology)
        self._channel.basic_qos(0, prefetch, False)
        self._consumer_tag: str | None = None

    def consume(self) -> None:
        if self._consumer_tag is None:
            self._consumer_tag = self._channel.basic_consume(self._queue, callback=read_by_the_reader)

    def cancel(self) -> None:
        if self._consumer_tag is not None:
            self._channel.basic_cancel(self._consumer_tag)
            self._consumer_tag = None

    def collect(self, first_wait: float) -> list[Delivery]:
        """Wait up to `first_wait` for one delivery, then take what has arrived (or arrives
        within the lull), up to the batch size and for at most the batch's longest wait."""
        arrived, connection, size = self._arrived, self._connection, self._batch_size
        connection.drain_buffered()
        if not arrived:
            try:
                connection.drain_events(timeout=first_wait)
            except TimeoutError:
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

    def acknowledge(self, last_delivery_tag: int) -> None:
        self._channel.basic_ack(last_delivery_tag, multiple=True)

    def idle(self, seconds: float) -> None:
        with suppress(TimeoutError):
            self._connection.drain_events(timeout=seconds)

    def keep_alive(self) -> None:
        self._connection.keep_alive()

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

    def resume(self) -> None:
        if self._consumer_tag is None:
            self._consumer_tag = self._channel.basic_consume(self._queue, callback=read_by_the_reader)

    def pause(self) -> None:
        if self._consumer_tag is not None:
            self._channel.basic_cancel(self._consumer_tag)
            self._consumer_tag = None

    def take(self, wait: float = 0.0) -> list[Delivery]:
        self._read(wait)
        letters = list(self._arrived)
        del self._arrived[:]
        return letters

    def acknowledge(self, last_delivery_tag: int) -> None:
        self._channel.basic_ack(last_delivery_tag, multiple=True)

    def keep_alive(self) -> None:
        """Read what the broker sent (its heartbeats among it) and send ours, at most every
        `read_every` seconds. `Connection.keep_alive` reads too: one read a tick, not two."""
        if time.monotonic() >= self._next_read:
            self._next_read = time.monotonic() + self._read_every
            self._connection.keep_alive()

    def close(self) -> None:
        self._connection.collect()

    def _read(self, wait: float) -> None:
        self._connection.drain_buffered()
        with suppress(TimeoutError):  # nothing there
            self._connection.drain_events(timeout=wait)
        self._connection.drain_buffered()
