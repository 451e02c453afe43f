"""What a handler decided; the worker does the sending after the commit."""

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from events import NotificationRequestedData
from handlers.ports import OwnerSetting, Versioned

if TYPE_CHECKING:  # basis reads the projection, whose handler returns a Decision
    from handlers.basis import Basis

DomainOutcome = Literal[
    "renewal.notification_requested",
    "renewal.duplicate_reminder",
    "owner.changed",
    "owner.cleared",
    "owner.stale_ignored",
    "owner.duplicate_ignored",
]
"""What a handler can decide; each is also the stable name of the message's log line."""


@dataclass(frozen=True, slots=True)
class Decision:
    """`outcome` is the stable log event name; `notification` is what to send, if anything.
    What the reminder ledger and the owner history record comes with it: for a reminder, the
    `basis` it was decided on; for an owner change, what the key held `before` it (for a stale
    one, the newer setting it lost to)."""

    outcome: DomainOutcome
    notification: NotificationRequestedData | None = None
    basis: "Basis | None" = None
    before: Versioned[OwnerSetting] | None = None
