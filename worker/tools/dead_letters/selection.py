"""Which dead letters an operation applies to: the filters `list`, `replay`, `export` and
`purge` share."""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from worker.tools.dead_letters.letter import DeadLetter
from worker.tools.dead_letters.values import utc

_AGO = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True, slots=True)
class Selection:
    """Filters combine with AND; several values of one filter combine with OR.

    `since` keeps dead letters that failed at or after it, `until` those that failed before
    it; a dead letter without a failure time matches neither. `limit` keeps the first N
    matches in queue order.
    """

    reasons: frozenset[str] = frozenset()
    types: frozenset[str] = frozenset()
    ids: frozenset[str] = frozenset()
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None

    @property
    def filtered(self) -> bool:
        """True if any filter narrows the selection (a limit alone counts)."""
        return bool(
            self.reasons or self.types or self.ids or self.since or self.until or self.limit is not None
        )

    def matches(self, letter: DeadLetter) -> bool:
        if self.reasons and letter.reason not in self.reasons:
            return False
        if self.types and letter.type not in self.types:
            return False
        if self.ids and letter.id not in self.ids:
            return False
        if self.since is not None or self.until is not None:
            failed_at = letter.failed_at
            if failed_at is None:
                return False
            if self.since is not None and failed_at < self.since:
                return False
            if self.until is not None and failed_at >= self.until:
                return False
        return True

    def describe(self) -> str:
        """The filters as the command line spells them, for messages."""
        words = [f"--reason {value}" for value in sorted(self.reasons)]
        words += [f"--type {value}" for value in sorted(self.types)]
        words += [f"--id {value}" for value in sorted(self.ids)]
        words += [
            f"--{name} {moment.isoformat()}"
            for name, moment in (("since", self.since), ("until", self.until))
            if moment
        ]
        words += [f"--limit {self.limit}"] if self.limit is not None else []
        return " ".join(words) or "all"


def parse_when(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 date or date-time (UTC unless it says otherwise), or an age: 90s, 15m, 2h, 7d.

    A time UTC cannot hold (9999-12-31T23:59:59-23:59) keeps its own offset: comparisons
    with failure times stay exact. Only ValueError comes out, with a message for the operator.
    """
    now = now or datetime.now(UTC)
    age = _AGO.match(text.strip())
    if age:
        try:
            return now - timedelta(**{_UNITS[age.group(2)]: int(age.group(1))})
        except (OverflowError, ValueError):
            raise ValueError(f"{text!r} reaches back before the year 1") from None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither an ISO 8601 time nor an age like 15m, 2h, 7d") from None
    return utc(moment)
