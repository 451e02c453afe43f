"""What a handler decided; the worker does the sending after the commit."""

from dataclasses import dataclass

from events import NotificationRequestedData


@dataclass(frozen=True, slots=True)
class Decision:
    """`outcome` is the stable log event name; `notification` is what to send, if anything."""

    outcome: str
    notification: NotificationRequestedData | None = None
