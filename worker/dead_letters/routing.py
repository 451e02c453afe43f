"""Where a replay may send a dead letter: the worker's input by default, never its output.

The decision is made here, from the letter and the configured names alone; `operations`
does the sending.
"""

from dataclasses import dataclass

from events import input_routing_key
from worker.dead_letters.outline import Replayable
from worker.settings import Settings


@dataclass(frozen=True, slots=True)
class Routes:
    """Where replays may go. By default only to the worker's input: the events exchange, under
    the routing key of the event's own type (events.registry).

    The x-original-* and x-death headers are only a claim: whoever can publish to the worker's
    queue can write them. `to_original` is the operator choosing to trust them; even then
    nothing goes anywhere the worker publishes: the notifications exchange, its alternate
    exchange, or the default exchange (the worker's retries and dead letters go through it,
    and through it any queue can be named, the unrouted queue among them).
    """

    events_exchange: str
    notifications_exchange: str
    unrouted: str  # the alternate exchange of the notifications and its queue share this name
    to_original: bool = False

    @classmethod
    def of(cls, settings: Settings, *, to_original: bool = False) -> "Routes":
        return cls(
            settings.events_exchange, settings.notifications_exchange, settings.unrouted_queue, to_original
        )

    def is_output(self, exchange: str, routing_key: str) -> bool:
        """True for anywhere the worker publishes (notifications, retries, dead letters): a
        replay never publishes there."""
        return exchange in ("", self.notifications_exchange, self.unrouted)


def destination(letter: Replayable, routes: Routes) -> tuple[str, str] | str:
    """Where a replay of `letter` goes, as (exchange, routing key), or why nowhere."""
    if routes.to_original:
        origin = letter.origin
        if origin is None:
            return "original exchange and routing key unknown"
        if routes.is_output(*origin):
            return (
                f"x-original destination {target(origin)} is the worker's output"
                " (where it publishes): never replayed there"
            )
        return origin
    routing_key = None if letter.type is None else input_routing_key(letter.type)
    if letter.type is None:
        return "no event type in the body or the properties (see --to-original)"
    if routing_key is None:
        return f"type {letter.type!r} is not an event the worker consumes (see --to-original)"
    origin = letter.origin
    if origin is not None and origin[0] != routes.events_exchange:
        came_from = f"exchange {origin[0]!r}" if origin[0] else "the default exchange"
        return f"came from {came_from}, not the input exchange {routes.events_exchange!r} (see --to-original)"
    return routes.events_exchange, routing_key


def target(to: tuple[str, str]) -> str:
    """`exchange / routing key`, as the dry run and `list` show where a replay goes."""
    exchange, routing_key = to
    return f"{exchange or '(default exchange)'} / {routing_key}"
