"""Times as operators write them: for the filters `list`, `replay`, `export`, `purge` and
`archive` share (the filters themselves are a `worker.dead_letters.model.LetterFilter`), and for
when a scheduled replay is due (`replay --at`)."""

import re
from datetime import UTC, datetime, timedelta

from worker.dead_letters.values import utc

_AGO = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_RELATIVE = re.compile(r"^\+\s*(\d+)\s*([smhd])$")


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


def parse_at(text: str, now: datetime | None = None) -> datetime:
    """When a scheduled replay is due: an ISO 8601 time with its zone (2026-12-07T03:00:00Z,
    …+01:00) or a delay from now (+90s, +30m, +2h, +1d). Only ValueError comes out, naming what
    to write, for anything else and for a time already past."""
    now = now or datetime.now(UTC)
    relative = _RELATIVE.match(text.strip())
    if relative:
        try:
            return now + timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
        except OverflowError:
            raise ValueError(f"{text!r} is too far ahead") from None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an ISO 8601 time with its zone (2026-12-07T03:00:00Z) nor a delay"
            " like +30m or +2h"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no zone: add one (Z, +01:00), or give a delay like +30m")
    if moment <= now:
        raise ValueError(
            f"{text!r} is in the past (now is {now.isoformat(timespec='seconds')}):"
            " give a later time, or leave --at out to replay now"
        )
    return moment.astimezone(UTC)
