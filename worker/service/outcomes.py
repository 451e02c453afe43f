"""The fixed vocabulary of what happened to a message: the canonical log line's event name,
and the `outcome` label of the messages-handled metric. One list; the sets are derived."""

from typing import Literal, get_args

from handlers import DomainOutcome

MessageOutcome = Literal["message.duplicate_event", "message.retry_scheduled", "message.dead_lettered"]
Outcome = Literal[DomainOutcome, MessageOutcome]

OUTCOMES: tuple[Outcome, ...] = (*get_args(DomainOutcome), *get_args(MessageOutcome))
WARNINGS: frozenset[Outcome] = frozenset({"message.retry_scheduled", "message.dead_lettered"})
"""Logged at warning level: the message did not go through (yet)."""
