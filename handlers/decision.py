"""What a handler decided; the worker does the sending after the commit."""

from dataclasses import dataclass
from typing import Literal

from events import NotificationRequestedData

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
    """`outcome` is the stable log event name; `notification` is what to send, if anything."""

    outcome: DomainOutcome
    notification: NotificationRequestedData | None = None
