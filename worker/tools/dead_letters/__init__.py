"""Dead letters for operations, over the records in the worker's store: read them, plan and run
replays (throttled, cancellable, resumable), archive, purge, export. Used by `renewals dlq` and
the console."""

from worker.messaging import REPLAY_COUNT
from worker.tools.dead_letters.letter import DeadLetter
from worker.tools.dead_letters.operations import DEFAULT_MAX_REPLAYS, Plan, Report, audit, label, plan, user
from worker.tools.dead_letters.queue import DeadLetterError, ReplayPublisher, ReplayRefused
from worker.tools.dead_letters.replays import (
    InvalidRate,
    Republisher,
    as_dead_letter,
    check_rate,
    cut,
    preview,
    run,
)
from worker.tools.dead_letters.routing import Routes, destination, target
from worker.tools.dead_letters.selection import parse_when

__all__ = [
    "DEFAULT_MAX_REPLAYS",
    "REPLAY_COUNT",
    "DeadLetter",
    "DeadLetterError",
    "InvalidRate",
    "Plan",
    "ReplayPublisher",
    "ReplayRefused",
    "Report",
    "Republisher",
    "Routes",
    "as_dead_letter",
    "audit",
    "check_rate",
    "cut",
    "destination",
    "label",
    "parse_when",
    "plan",
    "preview",
    "run",
    "target",
    "user",
]
