"""Who owns renewal communication: applying OwnerChanged and reading the effective setting."""

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from events import OwnerChanged
from handlers.decision import Decision
from handlers.ports import OwnerSetting, Projection, SettingKey, Stamp, Versioned

ResolvedFrom = Literal["client_override", "partner_default", "system_default"]
SYSTEM_DEFAULT = OwnerSetting(owner="platform", contact=None)


@dataclass(frozen=True, slots=True)
class Effective:
    """The setting a reminder uses, which rule chose it, and the stamp of the change that set it
    (None: the system default, which no event set)."""

    setting: OwnerSetting
    resolved_from: ResolvedFrom
    stamp: Stamp | None = None


def on_owner_changed(event: OwnerChanged, *, projection: Projection, now: datetime | None = None) -> Decision:
    """Apply the change if it is newer than what the key holds (last writer wins); `now`, when
    the worker handles it, caps its stamp's time. The same event again is a duplicate, whatever
    the moment it is handled at."""
    data = event.data
    key = SettingKey(data.partner_id, data.client_id)
    stamp = Stamp.of(event.time, event.id, now=now)
    current = projection.setting(key)
    if current is not None and current.stamp.event_id == event.id:
        return Decision("owner.duplicate_ignored")
    if current is not None and current.stamp >= stamp:
        return Decision("owner.stale_ignored", before=current)
    value = None if data.owner == "default" else OwnerSetting(data.owner, data.partner_contact)
    projection.put_setting(key, Versioned(value, stamp))
    return Decision("owner.cleared" if value is None else "owner.changed", before=current)


def effective_setting(partner_id: str | None, client_id: str, *, projection: Projection) -> Effective:
    """Override(P, C) if set, else Default(P) if set, else the system default."""
    if partner_id is None:
        return Effective(SYSTEM_DEFAULT, "system_default")
    override, default = projection.settings_for(partner_id, client_id)
    if override is not None and override.value is not None:
        return Effective(override.value, "client_override", override.stamp)
    if default is not None and default.value is not None:
        return Effective(default.value, "partner_default", default.stamp)
    return Effective(SYSTEM_DEFAULT, "system_default")
