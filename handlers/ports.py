"""What the domain needs from storage, as Protocols; the worker supplies the real ones."""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Generic, Literal, NamedTuple, Protocol, TypeVar

from events import Contact

Owner = Literal["platform", "partner"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
T = TypeVar("T")

iso_date: Callable[[date], str] = lru_cache(maxsize=4096)(date.isoformat)
"""A date as YYYY-MM-DD, remembered: `date.isoformat` formats through a printf-like call (about
2,600 instructions), and a batch writes the same few renewal dates several times an event (the
notification id, the reminder's key read and written, the ledger row)."""


class Stamp(NamedTuple):
    """When a fact changed: event time, then event id to break ties. Larger wins."""

    at_us: int
    event_id: str

    @classmethod
    def of(cls, time: datetime, event_id: str, *, now: datetime | None = None) -> "Stamp":
        """Microseconds since the epoch. Aware minus aware is exact integer arithmetic, so any
        time a model holds (year 1 at +14:00, year 9999 at -23:59) works: no conversion to UTC,
        which would overflow at those edges.

        `now` is when the worker handles the event: a time ahead of it counts as `now`, so that
        an event from a clock running fast cannot outrank a change made after it arrived
        (docs/domain.md, "Ordering"). None: the event's own time, as it is."""
        at_us = _epoch_us(time)
        if now is not None:  # compared as numbers: comparing the times would subtract them again
            at_us = min(at_us, _epoch_us(now))
        return cls(at_us, event_id)


def _epoch_us(time: datetime) -> int:
    delta = time - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class SettingKey(NamedTuple):
    """`client_id` None is the partner-wide default; otherwise the (partner, client) override."""

    partner_id: str
    client_id: str | None


@dataclass(frozen=True, slots=True)
class OwnerSetting:
    owner: Owner
    contact: Contact | None


@dataclass(frozen=True, slots=True)
class Versioned(Generic[T]):
    """A remembered value with the stamp of its last change; `value` None means cleared."""

    value: T | None
    stamp: Stamp


class ReminderKey(NamedTuple):
    """One reminder as billing means it, whatever event id it arrives under."""

    client_id: str
    renewal_date: date
    days_until_renewal: int


class Projection(Protocol):
    """The worker's memory of settings, decision makers and reminders already sent."""

    def setting(self, key: SettingKey) -> Versioned[OwnerSetting] | None: ...

    def put_setting(self, key: SettingKey, setting: Versioned[OwnerSetting]) -> None: ...

    def settings_for(
        self, partner_id: str, client_id: str
    ) -> tuple[Versioned[OwnerSetting] | None, Versioned[OwnerSetting] | None]:
        """(Override(P, C), Default(P)) in one look-up: the hot path reads both every time."""
        ...

    def decision_maker(self, client_id: str) -> Versioned[Contact] | None: ...

    def remember_decision_maker(self, client_id: str, contact: Versioned[Contact]) -> None:
        """Keep whichever of the stored and the given decision maker has the larger stamp
        (one conditional write, instead of a read and a write per reminder)."""
        ...

    def claim_reminder(self, key: ReminderKey, notification_id: str) -> bool:
        """Record the reminder as sent; False if it already was."""
        ...


@dataclass(frozen=True, slots=True)
class Needs:
    """The projection keys some events' handlers read: what a batch loads in one go."""

    settings: frozenset[SettingKey] = frozenset()
    decision_makers: frozenset[str] = frozenset()
    reminders: frozenset[ReminderKey] = frozenset()
