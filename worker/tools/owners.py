"""Who owns renewal communication for a partner (or one of its clients), read from the
projection with the domain's own rules: what `renewals owners show` prints; and who changed it
when, from the ledger's owner history: what `renewals owners history` prints."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from events import Contact, Recipient
from handlers import (
    NoRecipient,
    Projection,
    Recipients,
    SettingKey,
    Stamp,
    effective_setting,
    resolve_recipients,
)
from worker.ledger.questions import OwnerChange
from worker.ledger.words import change, outcome, utc_iso
from worker.printable import printable
from worker.tools.tables import render

# The partner-wide view is what a client without an override of its own gets; no real
# client has this id (ids hold no control characters), so the rules fall through to the
# partner default. Not NUL: PostgreSQL refuses a NUL in any text parameter.
_ANY_CLIENT = "\x7fany client without an override"
# Stands for "the client's decision maker" where the partner-wide view has no real one.
_SOME_DECISION_MAKER = Contact(email="decision.maker@client.invalid", name="the client's decision maker")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Case:
    """The recipients a reminder would get in one situation, or why nobody would."""

    situation: str
    recipients: Recipients | None
    no_recipient: str | None = None


@dataclass(frozen=True, slots=True)
class Ownership:
    partner_id: str
    client_id: str | None
    owner: str
    resolved_from: str
    contact: Contact | None
    changed: Stamp | None
    decision_maker: Contact | None
    decision_maker_seen: Stamp | None
    cases: tuple[Case, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "partner_id": self.partner_id,
            "client_id": self.client_id,
            "owner": self.owner,
            "resolved_from": self.resolved_from,
            "partner_contact": None if self.contact is None else self.contact.model_dump(),
            "changed_at": _when(self.changed),
            "changed_by_event": None if self.changed is None else self.changed.event_id,
            "decision_maker": None if self.decision_maker is None else self.decision_maker.model_dump(),
            "decision_maker_seen_at": _when(self.decision_maker_seen),
            "recipients": [_case_dict(case) for case in self.cases],
        }


def ownership(projection: Projection, partner_id: str, client_id: str | None = None) -> Ownership:
    """The effective setting, where it comes from, and who a reminder would reach now."""
    effective = effective_setting(partner_id, client_id or _ANY_CLIENT, projection=projection)
    key = SettingKey(partner_id, client_id if effective.resolved_from == "client_override" else None)
    stored = projection.setting(key) if effective.resolved_from != "system_default" else None
    remembered = projection.decision_maker(client_id) if client_id is not None else None
    decision_maker = None if remembered is None else remembered.value
    cases: tuple[Case, ...]
    if client_id is not None:
        cases = (_case("now", effective.setting, decision_maker),)
    else:
        cases = (
            _case("a client with a decision maker", effective.setting, _SOME_DECISION_MAKER),
            _case("a client without one", effective.setting, None),
        )
    return Ownership(
        partner_id=partner_id,
        client_id=client_id,
        owner=effective.setting.owner,
        resolved_from=effective.resolved_from,
        contact=effective.setting.contact,
        changed=None if stored is None else stored.stamp,
        decision_maker=decision_maker,
        decision_maker_seen=None if remembered is None else remembered.stamp,
        cases=cases,
    )


def who(recipient: Recipient) -> str:
    """A recipient as people read it: the address, or the placeholder's description."""
    if recipient.email == _SOME_DECISION_MAKER.email:
        return f"({_SOME_DECISION_MAKER.name})"
    return str(recipient.email)


SETTING_COLUMNS = ["partner_id", "client_id", "owner", "resolved_from", "partner_contact"]
CASE_COLUMNS = ["reminder for", "to", "cc", "audience", "fallback"]


def described(found: Ownership) -> str:
    """What `renewals owners show` prints: the setting, the decision maker, and who a reminder
    would reach (control characters escaped)."""
    facts = found.as_dict()
    changed = found.changed and f"{facts['changed_at']} by event {found.changed.event_id}"
    contact = found.contact and found.contact.email
    setting = {
        **facts,
        "client_id": found.client_id or "(partner-wide)",
        "partner_contact": contact,
    }
    lines = [render([{**setting, "changed": changed}], [*SETTING_COLUMNS, "changed"])]
    if found.client_id is not None:
        maker = found.decision_maker
        seen = f", seen {facts['decision_maker_seen_at']}"
        lines += ["", printable(f"decision maker: {'none known' if maker is None else maker.email + seen}")]
    lines += ["", render([_case_row(case) for case in found.cases], CASE_COLUMNS)]
    for case in found.cases:
        if case.no_recipient is not None:
            where = "" if found.client_id is not None else f" for {case.situation}"
            lines.append(printable(f"no recipient{where}: {case.no_recipient}; a reminder is dead-lettered"))
    return "\n".join(lines)


def _case_row(case: Case) -> dict[str, Any]:
    recipients = case.recipients
    if recipients is None:
        return {
            "reminder for": case.situation,
            "to": "NO RECIPIENT",
            "audience": "(dead letter: no_recipient)",
        }
    return {
        "reminder for": case.situation,
        "to": [who(r) for r in recipients.to],
        "cc": [who(r) for r in recipients.cc],
        "audience": recipients.audience,
        "fallback": recipients.fallback,
    }


def _case(situation: str, setting: Any, decision_maker: Contact | None) -> Case:
    try:
        return Case(situation, resolve_recipients(setting, decision_maker))
    except NoRecipient as exc:
        return Case(situation, None, exc.detail)


def _case_dict(case: Case) -> dict[str, Any]:
    recipients = case.recipients
    if recipients is None:
        return {"case": case.situation, "no_recipient": case.no_recipient}
    return {
        "case": case.situation,
        "to": [_recipient_dict(r) for r in recipients.to],
        "cc": [_recipient_dict(r) for r in recipients.cc],
        "audience": recipients.audience,
        "fallback": recipients.fallback,
    }


def _recipient_dict(recipient: Recipient) -> dict[str, Any]:
    if recipient.email == _SOME_DECISION_MAKER.email:  # the partner-wide view: nobody in particular
        return {"role": recipient.role, "email": None, "name": None, "user_id": None}
    return {
        "role": recipient.role,
        "email": recipient.email,
        "name": recipient.name,
        "user_id": recipient.user_id,
    }


def _when(stamp: Stamp | None) -> str | None:
    """The stamp's time in UTC; one just outside what a datetime holds (year 1 at +14:00 is
    year 0 in UTC) is said in microseconds instead of failing."""
    if stamp is None:
        return None
    try:
        return (_EPOCH + timedelta(microseconds=stamp.at_us)).isoformat(timespec="seconds")
    except OverflowError:
        return f"{stamp.at_us} microseconds from 1970-01-01T00:00:00+00:00 (outside years 1 to 9999 UTC)"


HISTORY_COLUMNS = ["changed at", "received at", "client", "event", "change", "outcome"]


def history_described(changes: Sequence[OwnerChange]) -> str:
    """What `renewals owners history` prints: each change, the latest first, before → after and
    whether it won (control characters escaped)."""
    rows = [
        {
            "changed at": utc_iso(found.changed_at_us),
            "received at": utc_iso(found.received_at_us),
            "client": found.client_id or "(partner-wide)",
            "event": found.event_id,
            "change": change(found),
            "outcome": outcome(found),
        }
        for found in changes
    ]
    return render(rows, HISTORY_COLUMNS)
