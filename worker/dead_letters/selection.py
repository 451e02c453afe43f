"""Times as operators write them, for the filters `list`, `replay`, `export`, `purge` and
`archive` share (the filters themselves are a `worker.dead_letters.model.LetterFilter`)."""

import re
from datetime import UTC, datetime, timedelta

from worker.dead_letters.values import utc

_AGO = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


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
