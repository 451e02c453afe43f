"""RenewalApproaching: decide who hears about it, once per reminder."""

import hashlib
import uuid
from datetime import datetime

from events import NotificationRequestedData, RenewalApproaching
from handlers.basis import basis_of
from handlers.decision import Decision
from handlers.ports import Projection, ReminderKey, Stamp, Versioned, iso_date
from handlers.recipients import resolve_recipients

NOTIFICATION_NAMESPACE = uuid.UUID("6f1c5a52-4b0e-5d7e-9a0c-3e2b8f4d1a77")


_NAMESPACE_BYTES = NOTIFICATION_NAMESPACE.bytes


def notification_id_for(key: ReminderKey) -> str:
    """One reminder, one notification id, whatever event ids it arrives under and whatever was
    pruned: UUIDv5 (RFC 4122), under NOTIFICATION_NAMESPACE, of the reminder key as text
    (`client_id`, `renewal_date` as YYYY-MM-DD and `days_until_renewal`, joined by line feeds,
    which no id can hold). Computed as `uuid.uuid5` does, without the intermediate UUID objects
    (a test holds the two equal)."""
    name = f"{key.client_id}\n{iso_date(key.renewal_date)}\n{key.days_until_renewal}"
    digest = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def on_renewal_approaching(
    event: RenewalApproaching, *, projection: Projection, now: datetime | None = None
) -> Decision:
    """Resolve the recipients (raising NoRecipient before touching state), then claim the
    reminder; `now`, when the worker handles it, caps the stamp of the decision maker it names."""
    data = event.data
    basis = basis_of(event, projection=projection)
    effective = basis.effective
    recipients = resolve_recipients(effective.setting, basis.decision_maker)
    if data.decision_maker is not None:
        seen = Versioned(data.decision_maker, Stamp.of(event.time, event.id, now=now))
        projection.remember_decision_maker(data.client_id, seen)
    key = ReminderKey(data.client_id, data.renewal_date, event.days_until_renewal)
    notification_id = notification_id_for(key)
    if not projection.claim_reminder(key, notification_id):
        return Decision("renewal.duplicate_reminder", None, basis)
    notification = NotificationRequestedData(
        notification_id=notification_id,
        causation_id=event.id,
        partner_id=data.partner_id,
        client_id=data.client_id,
        client_name=data.client_name,
        renewal_date=data.renewal_date,
        days_until_renewal=event.days_until_renewal,
        subscription=data.subscription,
        owner=effective.setting.owner,
        resolved_from=effective.resolved_from,
        audience=recipients.audience,
        to=recipients.to,
        cc=recipients.cc,
        fallback=recipients.fallback,
    )
    return Decision("renewal.notification_requested", notification, basis)
