"""Dead letters, as one room: the records over the worker's store (`records`, `replay_book`,
`sql`, `model`), the worker's drain (`drain`), reading a letter (`letter`, `values`), replays
(`replays`, `queue`, `routing`, `operations`) and what became of them (`fates`, written by the
worker's batch and the drain; `brakes`, a canary's verdict and the brake), edit and retry
(`editing`, `guardrails`, `edit_diff`, `edits`), and every operator action, once (`actions`),
which `renewals dlq` and the console adapt. The names below are what the adapters use."""

from worker.dead_letters.letter import DeadLetter
from worker.dead_letters.operations import DEFAULT_MAX_REPLAYS, Plan, Report, audit, label, plan, user
from worker.dead_letters.queue import DeadLetterError, ReplayPublisher, ReplayRefused
from worker.dead_letters.replays import (
    InvalidRate,
    Republisher,
    as_dead_letter,
    check_rate,
    cut,
    preview,
    run,
)
from worker.dead_letters.routing import Routes, destination, target
from worker.dead_letters.selection import parse_at, parse_when
from worker.messaging import REPLAY_COUNT

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
    "parse_at",
    "parse_when",
    "plan",
    "preview",
    "run",
    "target",
    "user",
]
