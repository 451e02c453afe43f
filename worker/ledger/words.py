"""The ledger's rows said for people and for scripts: each reminder's decision in words, in the
domain's vocabulary (docs/domain.md: owner, partner default, client override, decision maker,
partner contact), each owner change as before → after; and both as the stable JSON the CLI's
`--json` and the console's API give. Addresses are said whole: the operator asked for them (they
are never logged)."""

import json
from typing import Any

from worker.ledger.questions import PARTNER_WIDE, OwnerChange, ReminderRow, moment

# The rule table's rows (docs/domain.md#the-rule-table) whose `to` is the decision maker.
_TO_DECISION_MAKER_ROWS = frozenset({1, 2})
_WHY_NOT = {
    "partner_handles": "the partner handles it",
    "setting": "a setting says not to send it",
    "duplicate": "it repeats a reminder already handled",
    "dead_letter": "it was dead-lettered",
    "no_recipient": "nobody to address (no partner contact, no decision maker known)",
}
_FALLBACKS = {"decision_maker_missing": "no decision maker known, so the partner contact stands in"}


def utc_iso(us: int | None) -> str | None:
    """A time as the JSON says it: ISO 8601 in UTC, to the second."""
    return None if us is None else moment(us).isoformat(timespec="seconds")


def day(us: int) -> str:
    """A time as the words say it: UTC, to the minute."""
    return moment(us).strftime("%Y-%m-%d %H:%M UTC")


def setting(row: ReminderRow) -> str:
    """The owner setting in force, where it came from, since when and by which event."""
    owner = row.owner or "unknown owner"
    source = row.resolved_from or row.owner_scope
    if source in ("system_default", "default"):
        return f"system default ({owner})"
    if source in ("partner_default", "partner"):
        said = f"{owner} default of {row.partner_id}"
    elif source in ("client_override", "client"):
        said = f"{owner} override for {row.client_id} at {row.partner_id}"
    else:
        said = f"{owner} ({source or 'source unknown'})"
    if row.owner_changed_at_us is not None:
        said += f" since {day(row.owner_changed_at_us)}"
    if row.owner_event_id is not None:
        said += f" (event {row.owner_event_id})"
    return said


def decision(row: ReminderRow) -> str:
    """The reminder's decision in one sentence."""
    if row.outcome != "notified":
        why = _WHY_NOT.get(row.reason or "", row.reason or "no reason recorded")
        if row.reason == "dead_letter":
            why += _dead_letter(row)
        if row.reason == "duplicate" and row.notification_id is not None:
            why += f" (notification {row.notification_id})"
        # A duplicate's setting decided nothing: the first reminder's row says what did.
        context = f" ({setting(row)})" if row.owner is not None and row.reason != "duplicate" else ""
        return f"no notification: {why}{context}"
    said = f"{setting(row)}: {_recipients(row)}"
    if row.letter_id is not None:
        said += f"; replayed from dead letter {row.letter_id}"
        if row.replay_operation is not None:
            said += f" by replay {row.replay_operation}"
    return said


def delivery(row: ReminderRow) -> str:
    """Where the notification stands: none, committed, published, or confirmed by the broker."""
    if row.notification_id is None or row.outcome != "notified":
        return "-"
    if row.confirmed_at_us is not None:
        return f"confirmed {day(row.confirmed_at_us)}"
    if row.published_at_us is not None:
        return f"published {day(row.published_at_us)}, not confirmed"
    return "not yet published"


def reminder_dict(row: ReminderRow) -> dict[str, Any]:
    """A reminder as `renewals reminders --json` and `/api/reminders` give it."""
    return {
        "seq": row.seq,
        "event_id": row.event_id,
        "partner_id": row.partner_id,
        "client_id": row.client_id,
        "renewal_date": row.renewal_date,
        "days_until_renewal": row.days_until_renewal,
        "handled_at": utc_iso(row.handled_at_us),
        "outcome": row.outcome,
        "reason": row.reason,
        "decision": decision(row),
        "rule_row": row.rule_row,
        "resolved_from": row.resolved_from,
        "fallback": row.fallback,
        "to": row.to_address,
        "cc": row.cc_address,
        "owner": {
            "owner": row.owner,
            "scope": row.owner_scope,
            "event_id": row.owner_event_id,
            "changed_at": utc_iso(row.owner_changed_at_us),
        },
        "decision_maker": {"email": row.decision_maker, "event_id": row.decision_maker_event_id},
        "notification": {
            "id": row.notification_id,
            "published_at": utc_iso(row.published_at_us),
            "confirmed_at": utc_iso(row.confirmed_at_us),
        },
        "letter_id": row.letter_id,
        "replay_operation": row.replay_operation,
        "detail": _detail(row.detail),
    }


def change(found: OwnerChange) -> str:
    """An owner change in words: before → after, and whether it won."""
    said = f"{_owner_setting(found.owner_before, found.contact_before)} → "
    said += _owner_setting(found.owner_after, found.contact_after)
    return said


def outcome(found: OwnerChange) -> str:
    if found.won:
        return "won"
    return f"lost to event {found.lost_to_event_id}" if found.lost_to_event_id else "lost to a newer change"


def change_dict(found: OwnerChange) -> dict[str, Any]:
    """An owner change as `renewals owners history --json` and `/api/owners/{partner}/history` give it."""
    return {
        "seq": found.seq,
        "partner_id": found.partner_id,
        "client_id": None if found.client_id == PARTNER_WIDE else found.client_id,
        "scope": "partner" if found.client_id == PARTNER_WIDE else "client",
        "before": {"owner": found.owner_before, "contact": found.contact_before},
        "after": {"owner": found.owner_after, "contact": found.contact_after},
        "event_id": found.event_id,
        "changed_at": utc_iso(found.changed_at_us),
        "received_at": utc_iso(found.received_at_us),
        "won": found.won,
        "lost_to_event_id": found.lost_to_event_id,
        "change": change(found),
        "outcome": outcome(found),
    }


def _recipients(row: ReminderRow) -> str:
    if row.to_address is None:
        return "to nobody recorded"
    to_decision_maker = (
        row.rule_row in _TO_DECISION_MAKER_ROWS
        if row.rule_row is not None
        else row.decision_maker is not None and row.decision_maker.casefold() == row.to_address.casefold()
    )
    role = "the decision maker" if to_decision_maker else "the partner contact"
    said = f"to {role} {row.to_address}"
    if row.cc_address is not None:
        said += f", copy {row.cc_address}"
    if row.fallback is not None:
        said += f" ({_FALLBACKS.get(row.fallback, 'fallback ' + row.fallback)})"
    return said


def _dead_letter(row: ReminderRow) -> str:
    """As what, and as which letter, a reminder was dead-lettered (where the row says)."""
    detail = _detail(row.detail)
    # The worker writes `dead_letter_reason` (worker/service/ledger.py); `reason` is an older spelling.
    reason = detail.get("dead_letter_reason", detail.get("reason")) if isinstance(detail, dict) else None
    said = f" as {reason}" if isinstance(reason, str) else ""
    return said + (f" (dead letter {row.letter_id})" if row.letter_id is not None else "")


def _owner_setting(owner: str | None, contact: str | None) -> str:
    if owner is None:
        return "(none)"
    if owner == "default":
        return "cleared (the partner default applies)"
    return f"{owner} with contact {contact}" if contact else owner


def _detail(text: str | None) -> Any:
    """The row's JSON detail as a value; text that is not JSON is handed out as it is."""
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text
