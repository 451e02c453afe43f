"""A letter's history as the console shows it, on its page and in the API: the store keeps what
was done to a letter, so its arrival (the worker took it in from the dead-letter queue) is put
first, at the time it was received, and every history starts with "received"."""

from dataclasses import dataclass
from datetime import datetime

from worker.dead_letters.model import HistoryEntry, StoredLetter


@dataclass(frozen=True, slots=True)
class Received:
    """A letter's arrival, with the fields of a `HistoryEntry` (those of an action empty)."""

    at: datetime
    kind: str = "received"
    actor: str = "worker"
    operation_id: None = None
    to: None = None
    outcome: None = None
    message_id: None = None
    text: None = None
    linked_letter: None = None


def received_first(stored: StoredLetter) -> list[HistoryEntry | Received]:
    """`stored`'s history, oldest first, after its arrival."""
    return [Received(stored.summary.received_at), *stored.history]
