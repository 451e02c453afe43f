"""Bringing queues that an earlier release (or an earlier broker) declared up to today's plan,
without losing a message: `renewals topology --migrate`.

RabbitMQ refuses to re-declare a queue with other arguments (PRECONDITION_FAILED), so the only
way to change them is to delete the queue and declare it again. For each queue of the plan
that the broker holds with other arguments:

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

Consumers: deleting a queue takes its consumers with it. RabbitMQ tells each one (a
consumer-cancel notification) only if it notices the deletion before a queue of the same name
is declared again; on 3.10 a quorum queue declared again at once inherits the old consumers
as ghosts that take deliveries and hand none over (issue 25: a worker stalled, unseen). So the
migration refuses (`ConsumersAttached`) while any consumer is attached to a queue it would
move, unless forced; and it always lets `SETTLE` pass between deleting a queue and declaring
it again, then checks that the new queue has no consumer before it gives it any message (a
ghost is cleared by deleting the still empty queue once more).
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import amqp
from amqp.exceptions import NotFound, PreconditionFailed

from worker.broker.endpoints import Broker
from worker.broker.errors import BrokerError
from worker.broker.links import queue_state
from worker.broker.publisher import ConfirmingPublisher
from worker.broker.topology import (
    HOLDING_SUFFIX,
    NO_DELIVERY_LIMIT,
    BrokerVersion,
    Queue,
    Topology,
    declare,
    holding_queue,
)
from worker.broker.wire import Connection, DeliveryReader, read_by_the_reader
from worker.logs import Logger
from worker.messaging import Delivery, Outgoing

__all__ = ["HOLDING_SUFFIX", "ConsumersAttached", "Migrated", "Migration"]

BATCH = 500  # messages moved per confirm round
GIVE_BACK_WAIT = 1.0  # seconds a queue must stay empty after a round before it is deleted
SETTLE = 1.0
"""Seconds between deleting a queue and declaring it again: time for the broker to tell the
deleted queue's consumers (on an idle 3.10, 50 ms was enough; 0 was not)."""
GHOST_CHECKS = 3  # times a new queue found with consumers is deleted and declared again
PROBLEM_HEADER = "x-migration-problem"
"""Set on a moved message whose properties could not be decoded (they cannot be copied; the
body and this note are)."""


class ConsumersAttached(BrokerError):
    """Consumers are attached to queues the migration would move (workers still running)."""

    def __init__(self, attached: dict[str, int]) -> None:
        self.attached = attached
        listed = ", ".join(
            f"{name} ({count} consumer{'' if count == 1 else 's'})" for name, count in attached.items()
        )
        super().__init__(
            f"consumers are attached to queues the migration would move: {listed}; stop the"
            " workers (and anything else consuming them) first, or give --force to migrate"
            " under them (their consumers are cancelled; workers of this release subscribe again)"
        )


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
        force: bool = False,
        settle: float = SETTLE,
    ) -> None:
        self._broker = broker
        self._plan = plan
        self._version = version
        self._log = log
        self._confirm_timeout = confirm_timeout
        self._progress = progress
        self._force = force
        self._settle = settle

    def run(self) -> list[Migrated]:
        """Migrate each queue of the plan the broker holds differently; then declare the plan.
        ConsumersAttached, before anything is touched, if a queue to move has consumers and
        the migration is not forced."""
        done: list[Migrated] = []
        reader = DeliveryReader()
        reading, _ = self._broker.connect(frame_handler=reader.frame_handler)
        try:
            to_move = [queue for queue in self._plan.queues if self._needs_migrating(reading, queue)]
            self._check_consumers(reading, to_move)
            writing, _ = self._broker.connect()
            try:
                publisher = ConfirmingPublisher(writing, confirm_timeout=self._confirm_timeout, log=self._log)
                mover = _Mover(reading, reader, publisher)
                for queue in to_move:
                    done.append(self._migrate(reading, mover, queue))
                declare(reading.channel(), self._plan)
            finally:
                writing.close()
        finally:
            reading.close()
        return done

    def _needs_migrating(self, connection: Connection, queue: Queue) -> bool:
        return _exists(connection, holding_queue(queue.name)) or not _matches(connection, queue)

    def _check_consumers(self, connection: Connection, queues: list[Queue]) -> None:
        attached: dict[str, int] = {}
        for queue in queues:
            for name in (queue.name, holding_queue(queue.name)):
                state = queue_state(connection, name)
                if state is not None and state.consumers:
                    attached[name] = state.consumers
        if not attached:
            return
        if not self._force:
            raise ConsumersAttached(attached)
        self._log.warning("topology.migrating_under_consumers", consumers=attached)
        self._progress(
            "--force: migrating under "
            + ", ".join(f"{count} consumer(s) of {name}" for name, count in attached.items())
            + "; the broker cancels them as each queue is deleted (workers of this release handle"
            " what they hold, then subscribe again; other consumers must subscribe again themselves)"
        )

    def _migrate(self, connection: Connection, mover: "_Mover", queue: Queue) -> Migrated:
        holding = holding_queue(queue.name)
        left_behind = _exists(connection, holding)
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
        if _exists(connection, queue.name):  # resuming: already declared again, perhaps consumed
            channel.queue_declare(queue.name, durable=True, auto_delete=False, arguments=queue.arguments)
        else:
            time.sleep(self._settle)  # the broker tells the deleted queue's consumers
            self._declare_without_ghosts(connection, queue)
        for binding in bindings:
            channel.queue_bind(queue.name, binding.exchange, binding.routing_key)
            channel.queue_unbind(holding, binding.exchange, binding.routing_key)
        moved_back = mover.empty(holding, into=queue.name)
        channel.close()
        self._log.info("topology.migrated", queue=queue.name, moved_out=moved_out, moved_back=moved_back)
        self._progress(f"migrated {queue.name}: {moved_back} message(s) kept")
        return Migrated(queue.name, moved_back)

    def _declare_without_ghosts(self, connection: Connection, queue: Queue) -> None:
        """Declare `queue` again; while it is still empty and unbound, a consumer on it can
        only be a ghost of the deleted one (workers of this release wait for the migration
        while the queue is absent): delete it again, wait longer, declare it once more."""
        settle = self._settle
        for _ in range(GHOST_CHECKS):
            channel = connection.channel()
            channel.queue_declare(queue.name, durable=True, auto_delete=False, arguments=queue.arguments)
            time.sleep(settle / 2)
            consumers = int(channel.queue_declare(queue.name, passive=True)[2])
            if consumers == 0:
                channel.close()
                return
            self._log.warning("topology.ghost_consumers", queue=queue.name, consumers=consumers)
            channel.queue_delete(queue.name)
            channel.close()
            settle *= 2
            time.sleep(settle)
        channel = connection.channel()
        channel.queue_declare(queue.name, durable=True, auto_delete=False, arguments=queue.arguments)
        channel.close()

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
