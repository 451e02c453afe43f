"""What one batch adds to the reminder ledger and the owner history (docs/domain.md, "The
reminder ledger"): a row for every RenewalApproaching it handled, whether it notified anyone or
not and why, and a row for every OwnerChanged it applied or found superseded. Built from what
the handlers decided (`Decision.basis`, `Decision.before`) and what the database let stand;
written by the batch's own transaction (`worker.store.ledger_writes`).

Not recorded: an event the inbox already holds (its first handling has its row), an OwnerChanged
repeating the change a key already holds, and a failure that is retried rather than
dead-lettered (the event is handled again, and recorded then).
"""

import json
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from datetime import datetime
from typing import Any, Literal

from events import OwnerChanged, RenewalApproaching
from handlers import (
    Basis,
    Decision,
    OwnerSetting,
    Projection,
    ReminderKey,
    SettingKey,
    Stamp,
    Versioned,
    basis_of,
    iso_date,
    notification_id_for,
)
from worker.messaging import REPLAY_OF_LETTER, REPLAY_OPERATION, Delivery
from worker.service.failures import Failure
from worker.store.ledger_writes import HistoryRow, LedgerRow
from worker.store.projection_writes import PARTNER_WIDE

Reason = Literal["duplicate", "dead_letter"]
"""Why a reminder caused no notification: its reminder key was claimed already (by another
event id, or by another worker a moment before), or it was dead-lettered."""

DIRECT_CUSTOMER = ""
"""The ledger's partner_id for a direct customer of the vendor (no partner)."""

_SCOPES = {"client_override": "client", "partner_default": "partner", "system_default": "default"}
_LONGEST_OPERATION = 200
_LARGEST_LETTER_ID = 2**63 - 1

Handled = tuple[Delivery, RenewalApproaching | OwnerChanged, Decision | Failure]
"""A delivery, its event, and what became of it: the handler's decision or the failure."""


def ledger_rows(
    handled: Iterable[Handled],
    *,
    notified: AbstractSet[str],
    settings_written: set[SettingKey],
    projection: Projection,
    now: datetime,
    now_us: int,
) -> tuple[list[LedgerRow], list[HistoryRow]]:
    """The batch's ledger rows and owner-history rows; `notified` are the notification ids the
    batch put in the outbox, `settings_written` the setting keys whose writes stood."""
    reminders: list[LedgerRow] = []
    changes: list[HistoryRow] = []
    for delivery, event, result in handled:
        if isinstance(event, RenewalApproaching):
            if isinstance(result, Failure):
                if result.outcome == "message.dead_lettered":
                    basis = basis_of(event, projection=projection)
                    detail = {"dead_letter_reason": result.reason}
                    reminders.append(_reminder(delivery, event, basis, None, now_us, "dead_letter", detail))
            elif result.basis is not None:
                notification = result.notification
                sent = notification is not None and notification.notification_id in notified
                reason: Reason | None = None if sent else "duplicate"
                reminders.append(_reminder(delivery, event, result.basis, result, now_us, reason))
        elif isinstance(result, Decision) and result.outcome != "owner.duplicate_ignored":
            changes.append(_owner_change(event, result, settings_written, now, now_us))
    return reminders, changes


def _reminder(
    delivery: Delivery,
    event: RenewalApproaching,
    basis: Basis,
    decision: Decision | None,
    now_us: int,
    reason: Reason | None,
    detail: dict[str, Any] | None = None,
) -> LedgerRow:
    data, effective = event.data, basis.effective
    notification = None if decision is None or reason is not None else decision.notification
    if reason == "duplicate":  # the notification the reminder already had: one id per reminder
        notification_id: str | None = notification_id_for(
            ReminderKey(data.client_id, data.renewal_date, event.days_until_renewal)
        )
    else:
        notification_id = None if notification is None else notification.notification_id
    headers = delivery.headers
    letter_id = _letter_id(headers.get(REPLAY_OF_LETTER)) if headers else None
    operation = _operation(headers.get(REPLAY_OPERATION)) if headers else None
    stamp = effective.stamp
    return (
        event.id,
        data.partner_id if data.partner_id is not None else DIRECT_CUSTOMER,
        data.client_id,
        iso_date(data.renewal_date),
        event.days_until_renewal,
        now_us,
        "notified" if reason is None else "no_notification",
        reason,
        basis.rule_row,
        effective.resolved_from,
        None if notification is None else notification.fallback,
        None if notification is None else _addresses(notification.to),
        None if notification is None else _addresses(notification.cc),
        effective.setting.owner,
        _SCOPES[effective.resolved_from],
        None if stamp is None else stamp.event_id,
        None if stamp is None else stamp.at_us,
        None if basis.decision_maker is None else basis.decision_maker.email,
        basis.decision_maker_event_id,
        notification_id,
        letter_id,
        operation,
        None if detail is None else json.dumps(detail, sort_keys=True),
    )


def _owner_change(
    event: OwnerChanged, decision: Decision, settings_written: set[SettingKey], now: datetime, now_us: int
) -> HistoryRow:
    """Won: applied, and the database let it stand. Lost: stale against the setting the batch
    read (whose event id it lost to), or beaten by another worker's commit (id filled in by the
    store)."""
    data = event.data
    key = SettingKey(data.partner_id, data.client_id)
    before = decision.before
    won = decision.outcome in ("owner.changed", "owner.cleared") and key in settings_written
    lost_to = (
        None if won or decision.outcome != "owner.stale_ignored" or before is None else before.stamp.event_id
    )
    after = None if data.owner == "default" else OwnerSetting(data.owner, data.partner_contact)
    return (
        data.partner_id,
        data.client_id or PARTNER_WIDE,
        *_setting(before),
        None if after is None else after.owner,
        None if after is None or after.contact is None else after.contact.model_dump_json(),
        event.id,
        Stamp.of(event.time, event.id, now=now).at_us,
        now_us,
        1 if won else 0,
        lost_to,
    )


def _setting(setting: Versioned[OwnerSetting] | None) -> tuple[str | None, str | None]:
    value = None if setting is None else setting.value
    if value is None:
        return None, None
    return value.owner, None if value.contact is None else value.contact.model_dump_json()


def _addresses(recipients: Sequence[Any]) -> str | None:
    """The rule table names at most one `to` and one `cc`; more would be listed, comma-separated."""
    if len(recipients) <= 1:
        return str(recipients[0].email) if recipients else None
    return ", ".join(recipient.email for recipient in recipients)


def _letter_id(value: object) -> int | None:
    """The dead letter's id from the replay header: a whole number the store could hold, or
    nothing (a header we did not write is not trusted further)."""
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= _LARGEST_LETTER_ID:
        return value
    return None


def _operation(value: object) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and 0 < len(value) <= _LONGEST_OPERATION and value.isprintable():
        return value
    return None
