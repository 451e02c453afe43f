"""Dead letters for operations: read them without disturbing the queue, replay them safely,
export and purge them. Used by `renewals dlq`."""

from worker.broker.messages import REPLAY_COUNT
from worker.tools.dead_letters.letter import DeadLetter
from worker.tools.dead_letters.operations import (
    DEFAULT_MAX_REPLAYS,
    Plan,
    Report,
    find,
    label,
    plan,
    purge,
    replay,
    selected,
)
from worker.tools.dead_letters.queue import DeadLetterError, DeadLetterQueue, ReplayRefused
from worker.tools.dead_letters.routing import Routes, destination, target
from worker.tools.dead_letters.selection import Selection, parse_when

__all__ = [
    "DEFAULT_MAX_REPLAYS",
    "REPLAY_COUNT",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterQueue",
    "Plan",
    "ReplayRefused",
    "Report",
    "Routes",
    "Selection",
    "destination",
    "find",
    "label",
    "parse_when",
    "plan",
    "purge",
    "replay",
    "selected",
    "target",
]
