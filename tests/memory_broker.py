"""An in-memory broker behind the session's three links (`worker.service.ports`): the
worker's queue, the publisher with its confirms, and the dead-letter queue.

What a real broker would do that the session's rules depend on is kept: deliveries in hand
stay unacknowledged until acknowledged (and come back, redelivered, when a session ends
without acknowledging them), a cancelled consumer gets no new deliveries, publishes are
numbered and confirmed (or refused) only when waited for, and a message is laid out with the
real frame encoder, so one that cannot be encoded is left out as the real publisher leaves
it out. `log` records, in order, what the session did to the broker.
"""

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from worker.app import session_opener
from worker.broker.publisher import frames
from worker.dead_letters.records import DeadLetterRecords
from worker.messaging import ConsumerLost, Delivery, Outgoing, PublishFailed, QueueState, Sent, Unencodable
from worker.service.ports import Linked
from worker.service.session import Services, WorkerSession
from worker.settings import Settings

FRAME_MAX = 131072


@dataclass
class MemoryBroker:
    queue: list[Delivery] = field(default_factory=list)  # waiting for the worker's consumer
    dead_letters: list[Delivery] = field(default_factory=list)
    published: list[Outgoing] = field(default_factory=list)  # confirmed
    attempted: list[Outgoing] = field(default_factory=list)  # sent, confirmed or not
    log: list[str] = field(default_factory=list)
    batch_size: int = 100
    refuse_confirms: str | None = None  # set: the next wait for confirms fails with this
    stop: threading.Event = field(default_factory=threading.Event)
    stop_when: Callable[["MemoryBroker"], bool] = lambda broker: broker.quiet()
    unconfirmed: int = 0  # publishes sent and not yet waited for
    dead_letter_queue: str = "renewals.worker.dlq"
    cancel_after: int | None = None  # batches delivered before the broker cancels the consumer
    letters_cancelled: bool = False  # the broker cancels the dead-letter consumer after one take
    _next_tag: int = 1

    def quiet(self) -> bool:
        """Nothing left to deliver, to confirm or to drain: the default moment to stop."""
        return not self.queue and not self.dead_letters and not self.unconfirmed

    def deliver(
        self, body: bytes, routing_key: str = "renewal.approaching", **properties: object
    ) -> Delivery:
        """Put a message on the worker's queue."""
        delivery = Delivery(
            body,
            {"content_type": "application/json", "delivery_mode": 2, **properties},
            "renewals.events",
            routing_key,
            self._tag(),
        )
        self.queue.append(delivery)
        return delivery

    def dead_letter(self, delivery: Delivery) -> None:
        self.dead_letters.append(replace(delivery, delivery_tag=self._tag()))

    # What the composition root asks of a broker (`worker.service.ports.BrokerLinks`).
    name = "memory"
    endpoints = ("memory",)

    def connect(self, first: int) -> Linked:
        """A session's three links, on the one node there is."""
        return Linked(MemoryDeliveries(self), MemoryPublisher(self), MemoryLetters(self), 0)

    def notifications(self) -> list[Outgoing]:
        return [message for message in self.published if message.exchange == "renewals.notifications"]

    def _tag(self) -> int:
        tag, self._next_tag = self._next_tag, self._next_tag + 1
        return tag


class MemoryDeliveries:
    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker
        self.consuming = False
        self.in_hand: list[Delivery] = []
        self.lost: str | None = None
        self.batches = 0

    def state(self) -> QueueState | None:
        return QueueState(len(self._broker.queue), int(self.consuming))

    def consume(self) -> None:
        if not self.consuming:
            self.consuming = True
            self._broker.log.append("consume")

    def cancel(self) -> None:
        if self.consuming:
            self.consuming = False
            self._broker.log.append("cancel")

    def collect(self, first_wait: float) -> list[Delivery]:
        """A batch; once `cancel_after` batches are out, the broker cancels the consumer: what
        the queue still holds counts as already sent (read, in hand), then ConsumerLost."""
        broker = self._broker
        if self.lost is not None and not broker.queue:
            raise ConsumerLost(self.lost)
        if (not self.consuming and self.lost is None) or not broker.queue:
            if broker.stop_when(broker):
                broker.stop.set()
            time.sleep(0.001)  # as if it had waited a little for one
            return []
        batch, broker.queue[:] = broker.queue[: broker.batch_size], broker.queue[broker.batch_size :]
        self.in_hand += batch
        broker.log.append(f"deliver {[d.delivery_tag for d in batch]}")
        self.batches += 1
        if self.batches == broker.cancel_after:
            self.lost, self.consuming = "the broker cancelled the consumer", False
            broker.log.append("cancelled by the broker")
        return batch

    def read_ahead(self, until_false: Callable[[], bool]) -> None:
        """Nothing to read ahead: `collect` hands out what the queue holds at once."""

    def acknowledge(self, last_delivery_tag: int) -> None:
        self.in_hand = [d for d in self.in_hand if d.delivery_tag > last_delivery_tag]
        self._broker.log.append(f"ack {last_delivery_tag}")

    def idle(self, seconds: float) -> None:
        time.sleep(seconds)

    def keep_alive(self) -> None:
        pass

    def close(self) -> None:
        """The connection is gone: what was in hand goes back to the queue, redelivered."""
        self._broker.queue[:0] = [replace(d, redelivered=True) for d in self.in_hand]
        self.in_hand = []
        self._broker.log.append("closed")


class MemoryPublisher:
    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker
        self._sent: list[tuple[int, Outgoing]] = []
        self._next_tag = 1

    def send(self, messages: Sequence[Outgoing]) -> Sent:
        unencodable: dict[int, str] = {}
        for index, message in enumerate(messages):
            try:
                frames(1, FRAME_MAX, message)
            except Unencodable as exc:
                unencodable[index] = str(exc)
                continue
            self._sent.append((self._next_tag, message))
            self._broker.attempted.append(message)
            self._next_tag += 1
        self._broker.unconfirmed = len(self._sent)
        self._broker.log.append(f"send {len(messages) - len(unencodable)}")
        return Sent(self._next_tag - 1, unencodable)

    def wait_for(self, tag: int, *, while_waiting: Callable[[], None]) -> None:
        broker = self._broker
        if broker.refuse_confirms is not None:
            reason, broker.refuse_confirms = broker.refuse_confirms, None
            raise PublishFailed(reason)
        confirmed = [message for number, message in self._sent if number <= tag]
        self._sent = [(number, message) for number, message in self._sent if number > tag]
        broker.unconfirmed = len(self._sent)
        broker.published += confirmed
        for message in confirmed:  # the worker's own dead-letter copies, routed to the queue
            if message.exchange == "" and message.routing_key == broker.dead_letter_queue:
                broker.dead_letter(Delivery(message.body, message.properties, "", message.routing_key, 0))
        broker.log.append(f"confirmed {tag}")

    def keep_alive(self) -> None:
        pass

    def close(self) -> None:
        self._sent = []  # never confirmed: lost with the connection, as far as the worker knows
        self._broker.unconfirmed = 0


class MemoryLetters:
    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker
        self.consuming = False
        self.in_hand: list[Delivery] = []

    taken = 0  # letters handed out so far

    def resume(self) -> None:
        self.consuming = True

    def pause(self) -> None:
        self.consuming = False

    def take(self, wait: float = 0.0) -> list[Delivery]:
        broker = self._broker
        if not self.consuming or not broker.dead_letters:
            if broker.letters_cancelled and self.taken and not self.in_hand:
                raise ConsumerLost("the broker cancelled the consumer of the dead-letter queue")
            return []
        letters, broker.dead_letters[:] = list(broker.dead_letters), []
        self.in_hand += letters
        self.taken += len(letters)
        return letters

    def acknowledge(self, last_delivery_tag: int) -> None:
        self.in_hand = [d for d in self.in_hand if d.delivery_tag > last_delivery_tag]
        self._broker.log.append(f"letters ack {last_delivery_tag}")

    def keep_alive(self) -> None:
        pass

    def close(self) -> None:
        self._broker.dead_letters[:0] = self.in_hand
        self.in_hand = []


def memory_session(broker: MemoryBroker, services: Services) -> WorkerSession:
    """A session as the composition root opens one (`worker.app.session_opener`), on the
    in-memory broker's links."""
    settings = Settings(queue="renewals.worker", dead_letter_queue=broker.dead_letter_queue)
    session, _ = session_opener(settings, services, DeadLetterRecords(services.store), broker)(0)
    return session
