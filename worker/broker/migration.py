"""Bringing queues that an earlier release (or an earlier broker) declared up to today's plan,
without losing a message: `renewals topology --migrate`.

RabbitMQ refuses to re-declare a queue with other arguments (PRECONDITION_FAILED), so the only
way to change them is to delete the queue and declare it again. For each queue of the plan
that the broker holds with other arguments, with the workers stopped:

1. declare a holding queue `<name>.migrating` (no delivery limit: nothing in it can be dropped)
   and give it the queue's bindings, then take them from the queue, so that whatever is
   published meanwhile waits in the holding queue;
2. move every message from the queue to the holding queue;
3. delete the (now empty) queue and declare it as the plan says, with its bindings;
4. take the bindings from the holding queue, move every message back, delete it.

A message is moved with publisher confirms and acknowledged only once the copy is confirmed,
so a migration killed at any moment loses nothing: at worst a message is in both queues (the
worker's inbox absorbs a repeated event; a repeated dead letter is one more row to look at).
Running the command again resumes: a holding queue left behind is emptied back first.
Messages keep their body, properties and headers, and their order within each queue.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import amqp
from amqp.exceptions import NotFound, PreconditionFailed

from worker.broker.endpoints import Broker
from worker.broker.messages import Delivery, Outgoing
from worker.broker.publisher import ConfirmingPublisher
from worker.broker.topology import NO_DELIVERY_LIMIT, BrokerVersion, Queue, Topology, declare
from worker.broker.wire import Connection, DeliveryReader, read_by_the_reader
from worker.logs import Logger

HOLDING_SUFFIX = ".migrating"
BATCH = 500  # messages moved per confirm round
GIVE_BACK_WAIT = 1.0  # seconds a queue must stay empty after a round before it is deleted
PROBLEM_HEADER = "x-migration-problem"
"""Set on a moved message whose properties could not be decoded (they cannot be copied; the
body and this note are)."""


@dataclass(frozen=True, slots=True)
class Migrated:
    """One queue brought up to the plan, and how many messages went out and came back."""

    queue: str
    moved: int


class Migration:
    """`Migration(broker, plan, version, log=...).run()` migrates every queue that needs it."""

    def __init__(
        self,
        broker: Broker,
        plan: Topology,
        version: BrokerVersion,
        *,
        log: Logger,
        confirm_timeout: float = 15.0,
        progress: Callable[[str], None] = lambda _line: None,
    ) -> None:
        self._broker = broker
        self._plan = plan
        self._version = version
        self._log = log
        self._confirm_timeout = confirm_timeout
        self._progress = progress

    def run(self) -> list[Migrated]:
        """Migrate each queue of the plan the broker holds differently; then declare the plan."""
        done: list[Migrated] = []
        reader = DeliveryReader()
        reading, _ = self._broker.connect(frame_handler=reader.frame_handler)
        try:
            writing, _ = self._broker.connect()
            try:
                publisher = ConfirmingPublisher(writing, confirm_timeout=self._confirm_timeout, log=self._log)
                mover = _Mover(reading, reader, publisher)
                for queue in self._plan.queues:
                    moved = self._migrate(reading, mover, queue)
                    if moved is not None:
                        done.append(moved)
                declare(reading.channel(), self._plan)
            finally:
                writing.close()
        finally:
            reading.close()
        return done

    def _migrate(self, connection: Connection, mover: "_Mover", queue: Queue) -> Migrated | None:
        holding = queue.name + HOLDING_SUFFIX
        left_behind = _exists(connection, holding)
        if not left_behind and _matches(connection, queue):
            return None
        self._progress(f"migrating {queue.name}" + (" (resuming)" if left_behind else ""))
        bindings = [b for b in self._plan.bindings if b.queue == queue.name]
        channel = connection.channel()
        if not left_behind:
            channel.queue_declare(
                holding, durable=True, auto_delete=False, arguments=self._holding_arguments()
            )
        for binding in bindings:
            channel.queue_bind(holding, binding.exchange, binding.routing_key)
        moved_out = 0
        # Resuming, the queue may already be the new one (then only the way back is left).
        if _exists(connection, queue.name) and not (left_behind and _matches(connection, queue)):
            for binding in bindings:
                channel.queue_unbind(queue.name, binding.exchange, binding.routing_key)
            moved_out = mover.empty(queue.name, into=holding)
        channel.queue_declare(queue.name, durable=True, auto_delete=False, arguments=queue.arguments)
        for binding in bindings:
            channel.queue_bind(queue.name, binding.exchange, binding.routing_key)
            channel.queue_unbind(holding, binding.exchange, binding.routing_key)
        moved_back = mover.empty(holding, into=queue.name)
        channel.close()
        self._log.info("topology.migrated", queue=queue.name, moved_out=moved_out, moved_back=moved_back)
        self._progress(f"migrated {queue.name}: {moved_back} message(s) kept")
        return Migrated(queue.name, moved_back)

    def _holding_arguments(self) -> dict[str, Any]:
        arguments: dict[str, Any] = {"x-queue-type": "quorum"}
        if self._version.limits_by_default:
            arguments["x-delivery-limit"] = NO_DELIVERY_LIMIT
        return arguments


class _Mover:
    """Moves every message of one queue to another, in order, confirmed before acknowledged."""

    def __init__(
        self, connection: Connection, reader: DeliveryReader, publisher: ConfirmingPublisher
    ) -> None:
        self._connection = connection
        self._arrived = reader.arrived
        self._publisher = publisher

    def empty(self, source: str, *, into: str) -> int:
        """Move everything from `source` to `into`, then delete `source` once it stays empty
        (what was still on its way to us when we stopped reading goes back there a moment
        later, and is moved in another round; quorum queues cannot be deleted "if empty")."""
        moved = 0
        while True:
            moved += self.move(source, into)
            channel = self._connection.channel()
            deadline = time.monotonic() + GIVE_BACK_WAIT
            while _ready(channel, source) == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            if _ready(channel, source) == 0:
                channel.queue_delete(source)
                channel.close()
                return moved
            channel.close()

    def move(self, source: str, target: str) -> int:
        moved = 0
        channel = self._connection.channel()
        channel.basic_qos(0, BATCH, False)
        channel.basic_consume(source, callback=read_by_the_reader)
        while True:
            batch = self._take(channel, source)
            if not batch:
                break
            self._publisher.publish([_copy(delivery, target) for delivery in batch])
            channel.basic_ack(batch[-1].delivery_tag, multiple=True)
            moved += len(batch)
        channel.close()
        return moved

    def _take(self, channel: amqp.Channel, source: str) -> list[Delivery]:
        """Up to BATCH deliveries; an empty list once the queue has nothing ready and nothing
        arrived for a moment."""
        while len(self._arrived) < BATCH:
            self._connection.drain_buffered()
            if len(self._arrived) >= BATCH:
                break
            if _ready(channel, source) == 0:
                self._drain_for(0.2)  # what the broker has sent and we have not read yet
                break
            self._drain_for(0.05)
        batch = self._arrived[:BATCH]
        del self._arrived[:BATCH]
        return batch

    def _drain_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                self._connection.drain_events(timeout=remaining)
            except TimeoutError:
                return


def _copy(delivery: Delivery, target: str) -> Outgoing:
    properties = dict(delivery.properties)
    if delivery.problem is not None:
        properties = {"application_headers": {PROBLEM_HEADER: delivery.problem}, "delivery_mode": 2}
    return Outgoing("", target, delivery.body, properties)


def _ready(channel: amqp.Channel, name: str) -> int:
    return int(channel.queue_declare(name, passive=True)[1])


def _exists(connection: Connection, name: str) -> bool:
    channel = connection.channel()
    try:
        channel.queue_declare(name, passive=True)
    except NotFound:
        return False
    channel.close()
    return True


def _matches(connection: Connection, queue: Queue) -> bool:
    """True if the broker holds (or now creates) the queue with exactly the plan's arguments."""
    channel = connection.channel()
    try:
        channel.queue_declare(queue.name, durable=True, auto_delete=False, arguments=queue.arguments)
    except PreconditionFailed:
        return False
    channel.close()
    return True
