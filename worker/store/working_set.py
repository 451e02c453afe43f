"""The projection one batch works against: the stored state it needs, read up front in a few
set-based queries, plus the batch's own changes, written back in a few multi-row statements.

Handlers see the ordinary `handlers.Projection` port. Each event's changes can be undone alone
(`event()`), so a handler that fails leaves no trace while the rest of the batch goes on.
What the batch changed is what differs from what was read (`changes()`).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from events import Contact
from handlers import Needs, OwnerSetting, ReminderKey, SettingKey, Versioned

K = TypeVar("K")
V = TypeVar("V")

Setting = Versioned[OwnerSetting]
DecisionMaker = Versioned[Contact]


class StoredState(Protocol):
    """Bulk reads: for every key asked, its stored value or None (so absence is known too)."""

    def settings(self, keys: Iterable[SettingKey]) -> dict[SettingKey, Setting | None]: ...

    def decision_makers(self, client_ids: Iterable[str]) -> dict[str, DecisionMaker | None]: ...

    def reminders(self, keys: Iterable[ReminderKey]) -> dict[ReminderKey, str | None]: ...


@dataclass(frozen=True, slots=True)
class Changes:
    """Last value per key of everything the batch changed, to be written back."""

    settings: dict[SettingKey, Setting] = field(default_factory=dict)
    decision_makers: dict[str, DecisionMaker] = field(default_factory=dict)
    reminders: dict[ReminderKey, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.settings or self.decision_makers or self.reminders)


class _Table(Generic[K, V]):
    """One kind of stored value: what was read (None: known to be absent) and what it is now."""

    def __init__(self, fetch: Callable[[list[K]], Mapping[K, V | None]] | None) -> None:
        self._fetch = fetch
        self.values: dict[K, V | None] = {}
        self._read: dict[K, V | None] = {}

    def load(self, keys: Iterable[K]) -> None:
        missing = [key for key in keys if key not in self.values]
        if missing:
            found = self._fetch(missing) if self._fetch is not None else {}
            for key in missing:
                self.values[key] = self._read[key] = found.get(key)

    def get(self, key: K) -> V | None:
        try:
            return self.values[key]
        except KeyError:  # not read up front: fetched now
            self.load((key,))
            return self.values[key]

    def changed(self) -> dict[K, V]:
        return {
            key: value
            for key, value in self.values.items()
            if value is not None and value is not self._read.get(key)
        }


class WorkingSet:
    """A `handlers.Projection` held in memory for one batch (or, with nothing stored behind
    it, a complete in-memory projection: what the domain's unit tests run against)."""

    def __init__(self, stored: StoredState | None = None) -> None:
        self._settings: _Table[SettingKey, Setting] = _Table(stored.settings if stored else None)
        self._decision_makers: _Table[str, DecisionMaker] = _Table(stored.decision_makers if stored else None)
        self._reminders: _Table[ReminderKey, str] = _Table(stored.reminders if stored else None)
        self._journal: list[tuple[_Table[Any, Any], Any, Any]] | None = None

    def preload(self, needs: Needs) -> None:
        """Read what the batch needs, in one query per kind (anything else a handler reads is
        fetched when it reads it)."""
        self._settings.load(needs.settings)
        self._decision_makers.load(needs.decision_makers)
        self._reminders.load(needs.reminders)

    # --- handlers.Projection ---------------------------------------------------------------

    def setting(self, key: SettingKey) -> Setting | None:
        return self._settings.get(key)

    def put_setting(self, key: SettingKey, setting: Setting) -> None:
        self._put(self._settings, key, setting)

    def settings_for(self, partner_id: str, client_id: str) -> tuple[Setting | None, Setting | None]:
        return self.setting(SettingKey(partner_id, client_id)), self.setting(SettingKey(partner_id, None))

    def decision_maker(self, client_id: str) -> DecisionMaker | None:
        return self._decision_makers.get(client_id)

    def remember_decision_maker(self, client_id: str, contact: DecisionMaker) -> None:
        current = self._decision_makers.get(client_id)
        if current is None or current.stamp < contact.stamp:
            self._put(self._decision_makers, client_id, contact)

    def claim_reminder(self, key: ReminderKey, notification_id: str) -> bool:
        if self._reminders.get(key) is not None:
            return False
        self._put(self._reminders, key, notification_id)
        return True

    # --- the batch's side ------------------------------------------------------------------

    def event(self) -> "_Event":
        """One event's changes: undone, all of them, if the block raises."""
        return _Event(self)

    def changes(self) -> Changes:
        """What differs from what was read: the writes the batch must make."""
        return Changes(self._settings.changed(), self._decision_makers.changed(), self._reminders.changed())

    def _put(self, table: _Table[K, V], key: K, value: V) -> None:
        before = table.get(key)  # read before it changes, so `changes()` can tell
        if self._journal is not None:
            self._journal.append((table, key, before))
        table.values[key] = value


class _Event:
    """`WorkingSet.event()`: a class rather than a generator, as it is entered for every event."""

    __slots__ = ("_work",)

    def __init__(self, work: WorkingSet) -> None:
        self._work = work

    def __enter__(self) -> None:
        self._work._journal = []

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: Any) -> None:
        journal, self._work._journal = self._work._journal, None
        if kind is not None and journal:
            for table, key, before in reversed(journal):
                table.values[key] = before
