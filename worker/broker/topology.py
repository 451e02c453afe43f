"""Everything the worker declares on the broker, as data: printed by `renewals topology`,
declared by the worker at start-up and by `renewals topology --declare`.

The plan depends on the settings and on the broker's series: since RabbitMQ 4.0 a quorum
queue declared without `x-delivery-limit` drops a message after 20 returns, so on 4.x every
queue of ours says what its limit is (docs/domain.md, "Deliveries on each RabbitMQ series").
"""

import re
from dataclasses import dataclass, field
from typing import Any

from amqp.exceptions import PreconditionFailed

from events import INPUT_ROUTING_KEYS
from worker.broker.errors import BrokerError
from worker.settings import Settings


@dataclass(frozen=True, slots=True, order=True)
class BrokerVersion:
    """A RabbitMQ series, as the broker names itself in its connection's server properties."""

    major: int
    minor: int

    @classmethod
    def parse(cls, text: str | bytes | None) -> "BrokerVersion":
        """ "4.0.5" -> 4.0; anything unreadable is taken for the newest series we know."""
        if isinstance(text, bytes):
            text = text.decode("ascii", "replace")
        found = re.match(r"(\d+)\.(\d+)", text or "")
        return cls(int(found[1]), int(found[2])) if found else NEWEST

    @classmethod
    def of(cls, connection: Any) -> "BrokerVersion":
        """The series of the broker a py-amqp connection is open to."""
        return cls.parse((connection.server_properties or {}).get("version"))

    @property
    def limits_by_default(self) -> bool:
        """True from 4.0 on: a quorum queue without `x-delivery-limit` gets a limit of 20."""
        return self.major >= 4

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


NEWEST = BrokerVersion(4, 3)
"""The newest series the tests cover; what `renewals topology` describes unless told otherwise."""

NO_DELIVERY_LIMIT = -1
"""`x-delivery-limit` that turns the limit off on 4.x (on 3.10 the same value drops a message at
its first return, so there the argument is left out: 3.10 has no limit by default)."""


HOLDING_SUFFIX = ".migrating"
"""`renewals topology --migrate` keeps a queue's messages in `<queue>.migrating` meanwhile."""


def holding_queue(queue: str) -> str:
    """Where `renewals topology --migrate` holds `queue`'s messages while it declares it again."""
    return queue + HOLDING_SUFFIX


@dataclass(frozen=True, slots=True)
class Exchange:
    name: str
    type: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Queue:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Binding:
    exchange: str
    queue: str
    routing_key: str


@dataclass(frozen=True, slots=True)
class Topology:
    exchanges: tuple[Exchange, ...]
    queues: tuple[Queue, ...]
    bindings: tuple[Binding, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "exchanges": [
                {"name": e.name, "type": e.type, "durable": True, "arguments": e.arguments}
                for e in self.exchanges
            ],
            "queues": [{"name": q.name, "durable": True, "arguments": q.arguments} for q in self.queues],
            "bindings": [
                {"exchange": b.exchange, "queue": b.queue, "routing_key": b.routing_key}
                for b in self.bindings
            ],
        }


def topology(settings: Settings, broker: BrokerVersion) -> Topology:
    """Derived from the settings and the broker's series, so every tool declares exactly what
    the worker does.

    With QUEUE_TYPE quorum (the default) every queue is a replicated quorum queue: the worker's
    queue, its retry tiers, the dead-letter queue and the unrouted queue all survive the loss
    of a cluster node. Quorum queues dead-letter at-least-once (and so refuse publishes when
    full rather than drop the oldest).

    No queue drops a message on its own. The worker's queue dead-letters what reaches
    DELIVERY_LIMIT (the last line of defence against a crash loop); every other queue has no
    limit: none on 3.10, where that is the default, and an explicit "none" on 4.x, where the
    default would drop a message after 20 returns.
    """
    unrouted_exchange = settings.unrouted_queue
    kind: dict[str, Any] = {"x-queue-type": settings.queue_type}
    if settings.queue_type == "quorum" and broker.limits_by_default:
        kind["x-delivery-limit"] = NO_DELIVERY_LIMIT
    at_least_once: dict[str, Any] = (
        {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
        if settings.queue_type == "quorum"
        else {}
    )
    work_queue_arguments: dict[str, Any] = {
        **kind,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": settings.dead_letter_queue,
        **at_least_once,
    }
    if settings.queue_type == "quorum":
        work_queue_arguments["x-delivery-limit"] = settings.delivery_limit
    retry_queues = [
        Queue(
            name,
            {
                **kind,
                "x-message-ttl": int(delay * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": settings.queue,
                **at_least_once,
            },
        )
        for name, delay in dict(
            settings.retry_queue(attempt) for attempt in range(1, len(settings.retry_delays) + 1)
        ).items()
    ]
    return Topology(
        exchanges=(
            Exchange(settings.events_exchange, "topic"),
            Exchange(unrouted_exchange, "fanout"),
            Exchange(settings.notifications_exchange, "topic", {"alternate-exchange": unrouted_exchange}),
        ),
        queues=(
            Queue(settings.queue, work_queue_arguments),
            Queue(settings.dead_letter_queue, dict(kind)),
            Queue(settings.unrouted_queue, dict(kind)),
            *retry_queues,
        ),
        bindings=(
            *(Binding(settings.events_exchange, settings.queue, key) for key in INPUT_ROUTING_KEYS),
            Binding(unrouted_exchange, settings.unrouted_queue, ""),
        ),
    )


class TopologyMismatch(BrokerError):
    """The broker already has an object of this name with other arguments: a configuration
    problem that no retry can fix."""


def declare(channel: Any, plan: Topology) -> None:
    """Idempotently declare `plan` on a py-amqp channel. TopologyMismatch if an existing
    object differs (say, a classic dead-letter queue left by an older release)."""
    try:
        for exchange in plan.exchanges:
            channel.exchange_declare(
                exchange.name, exchange.type, durable=True, auto_delete=False, arguments=exchange.arguments
            )
        for queue in plan.queues:
            channel.queue_declare(queue.name, durable=True, auto_delete=False, arguments=queue.arguments)
        for binding in plan.bindings:
            channel.queue_bind(binding.queue, binding.exchange, binding.routing_key)
    except PreconditionFailed as exc:
        queue_type = str(plan.queues[0].arguments.get("x-queue-type", "classic")) if plan.queues else ""
        raise TopologyMismatch(mismatch_message(exc.reply_text, queue_type)) from None


_INEQUIVALENT = re.compile(
    r"inequivalent arg '(?P<arg>[^']+)'.*received (?P<ours>.+) but current is (?P<theirs>.+)$"
)
# Arguments the worker gives quorum queues only: a difference in one of them is a difference in
# queue type, whichever argument the broker happens to compare first.
_QUORUM_ONLY = ("x-queue-type", "x-dead-letter-strategy", "x-overflow")


def mismatch_message(reply_text: str, queue_type: str) -> str:
    """The one line a mismatch is told in: the broker's words, then what to fix. RabbitMQ names
    the first argument that differs (`inequivalent arg 'x-dead-letter-strategy' ... received none
    but current is ...`), so the fix follows from what it holds and what `queue_type` asked."""
    found = _INEQUIVALENT.search(reply_text)
    if found is not None and found["arg"] in _QUORUM_ONLY:
        held = {"x-queue-type": found["theirs"]}.get(found["arg"], "")
        if "quorum" in held or (queue_type == "classic" and found["theirs"] != "none"):
            existing = "quorum"
        elif "classic" in held or (queue_type == "quorum" and found["theirs"] == "none"):
            existing = "classic"
        else:
            existing = ""
        if existing and existing != queue_type:
            return (
                f"{reply_text}: the queue exists as a {existing} queue and these settings ask for"
                f" {queue_type} (set RENEWALS_QUEUE_TYPE={existing} to use it as it is, or stop the"
                f" workers and run `renewals topology --migrate`, which declares it again as"
                f" {queue_type} and keeps every message)"
            )
    return (
        f"{reply_text}: the broker holds it with other arguments than these settings ask for"
        " (an earlier release or an upgraded broker; stop the workers and run `renewals topology"
        " --migrate`, which declares it again and keeps every message, or change the settings to match it)"
    )
