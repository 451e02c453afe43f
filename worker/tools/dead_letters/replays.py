"""Replays over the records: a throttled, cancellable, resumable operation that republishes
claimed letters through the worker's broker layer with confirms and records each outcome.

The CLI runs one in the foreground (Ctrl-C cancels cleanly); the console runs one in a
background thread and cancels it with `DeadLetterRecords.request_cancel` from any process.
"""

from collections.abc import Callable
from typing import Any, Protocol

from worker.store.dead_letters import DeadLetterRecords
from worker.store.letters import LetterFilter, ReplayOperation, StoredLetter
from worker.tools.dead_letters.letter import DeadLetter
from worker.tools.dead_letters.operations import Plan
from worker.tools.dead_letters.routing import Routes


class Republisher(Protocol):
    """Publishes one copy and waits for the broker's confirm; raises ReplayRefused when the
    broker does not take it."""

    def republish(self, exchange: str, routing_key: str, body: bytes, properties: dict[str, Any]) -> None: ...


class ProgressListener(Protocol):
    """Told after each letter (and once with `finished`)."""

    def __call__(self, operation: ReplayOperation, *, finished: bool = False) -> None: ...


def as_dead_letter(letter: StoredLetter) -> DeadLetter:
    """The stored letter as the tools read one (its row id as its position)."""
    raise NotImplementedError


def preview(
    records: DeadLetterRecords,
    selection: LetterFilter,
    routes: Routes,
    *,
    max_replays: int,
    force: bool,
    limit: int | None = None,
) -> list[Plan]:
    """What a replay of the selection would do with each letter (a dry run), changing nothing."""
    raise NotImplementedError


def run(
    records: DeadLetterRecords,
    operation_id: str,
    publisher: Republisher,
    routes: Routes,
    *,
    progress: ProgressListener | None = None,
    stop: Callable[[], bool] = lambda: False,
    batch: int = 50,
) -> ReplayOperation:
    """Replay the operation's letters until none are left, it is cancelled (its row's flag,
    or `stop()` true), or the process is interrupted (KeyboardInterrupt: claims released,
    the operation ends cancelled, then the interrupt goes on). Holds the operation's rate.
    Returns the operation as it ended."""
    raise NotImplementedError
