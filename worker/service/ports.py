"""What the running worker needs of the broker: a session's three links, one per connection,
and the nodes to connect to. Their messages, results and errors are `worker.messaging`'s;
nothing here (nor anything in `worker.service`) imports py-amqp or `worker.broker`.

The real links are in `worker.broker.links` (py-amqp connections); `tests/memory_broker.py`
has in-memory ones, so that the session, the dead-letter drain and housekeeping are
unit-tested without a broker. Nothing here is called from inside a broker callback: every
method is called from the session's loop. A link that loses its connection raises
`BrokerLost`.
"""

from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

from worker.messaging import Delivery, Outgoing, QueueState, Sent


class Deliveries(Protocol):
    """The worker's queue, consumed with manual acknowledgements."""

    lost: str | None
    """Why the broker no longer delivers to the consumer (it cancelled it), or None."""

    def consume(self) -> None:
        """Start (or restart) taking deliveries; a no-op while consuming."""

    def cancel(self) -> None:
        """Take no more deliveries; those in hand stay unacknowledged."""

    def collect(self, first_wait: float) -> list[Delivery]:
        """Wait up to `first_wait` for a first delivery, then take a batch of what arrives;
        ConsumerLost once the consumer was cancelled by the broker and nothing is left in hand."""
        ...

    def read_ahead(self, until_false: Callable[[], bool]) -> None:
        """Read the deliveries arriving while `until_false()` is true (a batch's COMMIT waits),
        up to a batch in hand, for the next `collect`; wait for nothing else."""

    def state(self) -> QueueState | None:
        """The queue's ready messages and consumers as the broker reports them; None if gone."""
        ...

    def acknowledge(self, last_delivery_tag: int) -> None:
        """Acknowledge every delivery up to `last_delivery_tag` (one multiple ack)."""

    def idle(self, seconds: float) -> None:
        """Read the connection for up to `seconds`; deliveries arriving are kept."""

    def keep_alive(self) -> None:
        """Read what the broker sent and send heartbeats; call at least once a second."""

    def close(self) -> None:
        """Drop the connection without a closing handshake (the broker may be gone)."""


class Publisher(Protocol):
    """Publishing with confirms: `send` a batch, `wait_for` its last tag later."""

    def send(self, messages: Sequence[Outgoing]) -> Sent: ...

    def wait_for(self, tag: int, *, while_waiting: Callable[[], None]) -> None:
        """Return once every publish up to `tag` is confirmed; PublishFailed if one is not."""

    def keep_alive(self) -> None: ...

    def close(self) -> None: ...


class LetterQueue(Protocol):
    """The dead-letter queue, which the drain moves into the store."""

    def resume(self) -> None: ...

    def pause(self) -> None: ...

    def take(self, wait: float = 0.0) -> list[Delivery]:
        """The letters that have arrived, waiting up to `wait` for the first; ConsumerLost
        once the consumer was cancelled by the broker and none is left in hand."""
        ...

    def acknowledge(self, last_delivery_tag: int) -> None: ...

    def keep_alive(self) -> None: ...

    def close(self) -> None: ...


class Nodes(Protocol):
    """The broker's nodes, tried in turn; `str()` names them all (passwords masked)."""

    @property
    def endpoints(self) -> Sequence[object]: ...


class LetterDrain(Protocol):
    """What the session asks of the dead-letter drain (`worker.dead_letters.drain`): take the
    letters that arrived, record them in the store, then acknowledge them."""

    def resume(self) -> None: ...

    def pause(self) -> None: ...

    def due(self) -> bool:
        """Whether it is time for another look at the dead-letter queue."""
        ...

    def take(self, wait: float = 0.0) -> list[Delivery]: ...

    def record(self, letters: list[Delivery]) -> int:
        """Insert the letters in one transaction; how many were new (StoreUnavailable: none)."""
        ...

    def acknowledge(self, letters: list[Delivery], fresh: int) -> None: ...

    def keep_alive(self) -> None: ...

    def close(self) -> None: ...


class Linked(NamedTuple):
    """A session's three links, connected on one node (`node`, its index)."""

    deliveries: Deliveries
    publisher: Publisher
    letters: LetterQueue
    node: int


class BrokerLinks(Nodes, Protocol):
    """The broker as the worker connects to it: its nodes, and a session's links on the first
    of them, from `first` on, that accepts (`worker.app.AmqpLinks`; the in-memory broker of
    the tests is another)."""

    @property
    def name(self) -> str:
        """The broker as a session's log line names it (passwords masked)."""
        ...

    def connect(self, first: int) -> Linked: ...
