"""Which messages exist: each CloudEvents `type`, its model and its routing key, written once.

Everything that needs the mapping (parsing, the worker's bindings, `renewals send`, the test
client, the benchmark) reads it from here.
"""

from dataclasses import dataclass, field
from typing import Any, get_args

from events.models import Envelope, NotificationRequested, OwnerChanged, RenewalApproaching


@dataclass(frozen=True, slots=True)
class MessageKind:
    """One message on the wire: its model and the routing key it travels under."""

    model: type[Envelope]
    routing_key: str
    type: str = field(init=False)
    """The CloudEvents `type`, as the model's `type` literal spells it (read once: every
    notification's properties name it)."""

    def __post_init__(self) -> None:
        annotation: Any = self.model.model_fields["type"].annotation
        object.__setattr__(self, "type", str(get_args(annotation)[0]))


RENEWAL_APPROACHING = MessageKind(RenewalApproaching, "renewal.approaching")
OWNER_CHANGED = MessageKind(OwnerChanged, "owner.changed")
NOTIFICATION_REQUESTED = MessageKind(NotificationRequested, "notification.requested.{audience}")

INPUTS: tuple[MessageKind, ...] = (RENEWAL_APPROACHING, OWNER_CHANGED)
"""What the worker consumes, in the order its bindings are declared."""

INPUT_BY_TYPE: dict[str, MessageKind] = {kind.type: kind for kind in INPUTS}
INPUT_ROUTING_KEYS: tuple[str, ...] = tuple(kind.routing_key for kind in INPUTS)


def input_routing_key(type_name: str) -> str | None:
    """The routing key an input event of this type is published under (None: not an input)."""
    kind = INPUT_BY_TYPE.get(type_name)
    return None if kind is None else kind.routing_key


def notification_routing_key(audience: str) -> str:
    """`notification.requested.<audience>`."""
    return NOTIFICATION_REQUESTED.routing_key.format(audience=audience)
