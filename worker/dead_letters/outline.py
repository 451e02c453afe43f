"""What a replay's decision reads of a letter (`Replayable`), and a letter as a preview reads it
from its row: its summary, never its body, properties or headers.

The summary's columns were read from the letter's headers and body once, when it was recorded
(worker/dead_letters/drain.py: `event_type` is the letter's `type`, `replays` its
`replay_count`, and so on), so a plan made from them is the plan a replay makes from the whole
letter."""

from dataclasses import dataclass
from typing import Protocol

from worker.dead_letters.model import LetterSummary


class Replayable(Protocol):
    """A dead letter as far as planning and showing its replay goes."""

    @property
    def position(self) -> int: ...
    @property
    def id(self) -> str | None: ...
    @property
    def type(self) -> str | None: ...
    @property
    def reason(self) -> str: ...
    @property
    def origin(self) -> tuple[str, str] | None: ...
    @property
    def replay_count(self) -> int: ...


@dataclass(frozen=True, slots=True)
class OutlinedLetter:
    """A letter as its stored summary says it: what a preview shows and plans from."""

    summary: LetterSummary

    @property
    def position(self) -> int:
        return self.summary.id

    @property
    def id(self) -> str | None:
        return self.summary.event_id

    @property
    def type(self) -> str | None:
        return self.summary.event_type

    @property
    def reason(self) -> str:
        return self.summary.reason

    @property
    def origin(self) -> tuple[str, str] | None:
        return self.summary.origin

    @property
    def replay_count(self) -> int:
        return self.summary.replays
