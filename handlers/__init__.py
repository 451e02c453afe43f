"""The domain: projection rules and the recipient decision, pure code over `ports`."""

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from events import OwnerChanged, RenewalApproaching
from handlers.basis import Basis, basis_of
from handlers.decision import Decision, DomainOutcome
from handlers.ports import (
    Needs,
    OwnerSetting,
    Projection,
    ReminderKey,
    SettingKey,
    Stamp,
    Versioned,
    iso_date,
)
from handlers.projection import Effective, effective_setting, on_owner_changed
from handlers.reads import needs_of
from handlers.recipients import NoRecipient, Recipients, resolve_recipients, rule_row
from handlers.reminders import notification_id_for, on_renewal_approaching


class Handler(Protocol):
    """A handler: the event first, the projection port and the moment it is handled (`now`,
    which caps the time of the stamps it writes) by keyword; it returns what it decided and
    leaves the doing (publishing) to the worker."""

    def __call__(self, event: Any, /, *, projection: Projection, now: datetime | None = None) -> Decision: ...


HandlerMap = Mapping[type[RenewalApproaching | OwnerChanged], Handler]

HANDLERS: HandlerMap = {
    RenewalApproaching: on_renewal_approaching,
    OwnerChanged: on_owner_changed,
}
"""Event type to handler: the one explicit map the worker dispatches through."""

__all__ = [
    "HANDLERS",
    "Basis",
    "Decision",
    "DomainOutcome",
    "Effective",
    "Handler",
    "HandlerMap",
    "Needs",
    "NoRecipient",
    "OwnerSetting",
    "Projection",
    "Recipients",
    "ReminderKey",
    "SettingKey",
    "Stamp",
    "Versioned",
    "basis_of",
    "effective_setting",
    "iso_date",
    "needs_of",
    "notification_id_for",
    "on_owner_changed",
    "on_renewal_approaching",
    "resolve_recipients",
    "rule_row",
]
