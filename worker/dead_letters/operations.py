"""What a replay decides for one dead letter (`plan`), kept apart from doing it, so a dry run
shows exactly what a replay would do; and the audit line every action writes."""

import getpass
import os
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from worker.dead_letters.letter import DeadLetter
from worker.dead_letters.outline import Replayable
from worker.dead_letters.routing import Routes, destination, target
from worker.logs import Logger

DEFAULT_MAX_REPLAYS = 3
L = TypeVar("L", bound=Replayable)


@dataclass(frozen=True, slots=True)
class Plan(Generic[L]):
    """What a replay does with one selected dead letter: `note` says where to, or why not;
    `to` is the exchange and routing key it is published to (None: skipped)."""

    letter: L  # the whole letter (a replay, the CLI's dry run) or its outline (the console's preview)
    action: Literal["replay", "skip"]
    note: str
    to: tuple[str, str] | None = None


@dataclass(slots=True)
class Report:
    """How far a replay got: `scanned` of `total` selected letters handled so far."""

    total: int = 0
    scanned: int = 0
    done: list[DeadLetter] = field(default_factory=list)
    skipped: list[Plan[DeadLetter]] = field(default_factory=list)
    failed: list[tuple[DeadLetter, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"done": len(self.done), "skipped": len(self.skipped), "failed": len(self.failed)}


def label(letter: Replayable) -> str:
    """The event id, or `#N` (the record's number) for a letter without one."""
    return letter.id or f"#{letter.position}"


def plan(
    letter: L,
    routes: Routes,
    *,
    max_replays: int = DEFAULT_MAX_REPLAYS,
    force: bool = False,
    cut: str | None = None,
) -> Plan[L]:
    """Replay to the destination `routes` allow, unless replayed too often already, or its
    body was `cut` when it was recorded (then `cut` says how)."""
    if cut is not None:
        return Plan(letter, "skip", cut)
    to = destination(letter, routes)
    if isinstance(to, str):
        return Plan(letter, "skip", to)
    if letter.replay_count >= max_replays and not force:
        return Plan(letter, "skip", f"replayed {letter.replay_count} times already (see --force)")
    return Plan(letter, "replay", target(to), to)


def audit(log: Logger, verb: str, *, result: str, warn: bool = False, **fields: Any) -> None:
    """One audit line (`dlq.replayed`, `dlq.purged`, ...): who, and what; the logger adds when."""
    (log.warning if warn else log.info)(f"dlq.{verb}", user=user(), **fields, result=result)


def user() -> str:
    """Who runs the command: the login name, or the uid where there is none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry (some containers)
        return f"uid {os.getuid()}"
