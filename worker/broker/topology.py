"""Everything the worker declares on the broker, as data: printed by `renewals topology`,
declared by the worker at start-up and by `renewals topology --declare`."""

from dataclasses import dataclass, field
from typing import Any

from events import INPUT_ROUTING_KEYS
from worker.settings import Settings


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


def topology(settings: Settings) -> Topology:
    """Derived from the settings alone, so every tool declares exactly what the worker does."""
    unrouted_exchange = settings.unrouted_queue
    work_queue_arguments: dict[str, Any] = {
        "x-queue-type": settings.queue_type,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": settings.dead_letter_queue,
    }
    if settings.queue_type == "quorum":
        work_queue_arguments |= {
            "x-delivery-limit": settings.delivery_limit,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
        }
    retry_queues = [
        Queue(
            name,
            {
                "x-queue-type": "classic",
                "x-message-ttl": int(delay * 1000),
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": settings.queue,
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
            Queue(settings.dead_letter_queue, {"x-queue-type": "classic"}),
            Queue(settings.unrouted_queue, {"x-queue-type": "classic"}),
            *retry_queues,
        ),
        bindings=(
            *(Binding(settings.events_exchange, settings.queue, key) for key in INPUT_ROUTING_KEYS),
            Binding(unrouted_exchange, settings.unrouted_queue, ""),
        ),
    )


def declare(channel: Any, plan: Topology) -> None:
    """Idempotently declare `plan` on a py-amqp channel (what kombu connections give)."""
    for exchange in plan.exchanges:
        channel.exchange_declare(
            exchange.name, exchange.type, durable=True, auto_delete=False, arguments=exchange.arguments
        )
    for queue in plan.queues:
        channel.queue_declare(queue.name, durable=True, auto_delete=False, arguments=queue.arguments)
    for binding in plan.bindings:
        channel.queue_bind(binding.queue, binding.exchange, binding.routing_key)
