"""What a notification should say, computed the runner's own way from docs/domain.md: last writer
wins on (time, id) per setting key and per client's decision maker, the effective setting
(override, partner default, system default), the rule table and repeated addresses.

Deliberately not the worker's code: a checker that called `handlers` would agree with any bug
in them. The runner feeds it events in any order; only stamps decide.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

NOTIFICATION_NAMESPACE = uuid.UUID("6f1c5a52-4b0e-5d7e-9a0c-3e2b8f4d1a77")
"""docs/domain.md, "Once per reminder": a notification's id is the UUIDv5 of its reminder key."""

Stamp = tuple[datetime, str]
Contact = dict[str, Any]  # {"email", "name"?, "user_id"?} as on the wire


def notification_id(client_id: str, renewal_date: str, days_until_renewal: int) -> str:
    """The reminder's id: client, renewal date and days before, joined by line feeds."""
    return str(uuid.uuid5(NOTIFICATION_NAMESPACE, f"{client_id}\n{renewal_date}\n{days_until_renewal}"))


@dataclass
class Rules:
    """Settings and decision makers as they stand once every given event is applied."""

    settings: dict[tuple[str, str | None], tuple[Stamp, dict[str, Any] | None]] = field(default_factory=dict)
    decision_makers: dict[str, tuple[Stamp, Contact]] = field(default_factory=dict)

    def owner_changed(self, event: dict[str, Any]) -> None:
        """Keep the change if its stamp is the largest its key has seen (`default` clears)."""
        data = event["data"]
        key = (data["partner_id"], data.get("client_id"))
        value = None if data["owner"] == "default" else data
        stamp = _stamp(event)
        if key not in self.settings or self.settings[key][0] < stamp:
            self.settings[key] = (stamp, value)

    def reminder_seen(self, event: dict[str, Any]) -> None:
        """A processed reminder naming a decision maker: remembered if its stamp is larger."""
        data = event["data"]
        if data.get("decision_maker") is None:
            return
        stamp, client = _stamp(event), data["client_id"]
        if client not in self.decision_makers or self.decision_makers[client][0] < stamp:
            self.decision_makers[client] = (stamp, data["decision_maker"])

    def notification(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The `data` a reminder's notification should carry (ids aside); None: no_recipient."""
        data = event["data"]
        owner, contact, resolved_from = self.effective(data["partner_id"], data["client_id"])
        remembered = self.decision_makers.get(data["client_id"])
        maker = data.get("decision_maker") or (remembered[1] if remembered else None)
        fallback = None
        if owner == "partner":
            to, cc = [_recipient("partner_contact", contact)], []
        elif maker is not None:
            to = [_recipient("decision_maker", maker)]
            cc = [_recipient("partner_contact", contact)] if contact is not None else []
        elif contact is not None:
            to, cc, fallback = [_recipient("partner_contact", contact)], [], "decision_maker_missing"
        else:
            return None
        cc = [r for r in cc if r["email"].casefold() not in {t["email"].casefold() for t in to}]
        roles = {r["role"] for r in to + cc}
        audience = "both" if len(roles) == 2 else roles.pop()
        return {
            "kind": "renewal_reminder",
            "partner_id": data["partner_id"],
            "client_id": data["client_id"],
            "client_name": data.get("client_name"),
            "renewal_date": data["renewal_date"],
            "days_until_renewal": data["days_until_renewal"],
            "subscription": data.get("subscription"),
            "owner": owner,
            "resolved_from": resolved_from,
            "audience": audience,
            "to": to,
            "cc": cc,
            "fallback": fallback,
        }

    def effective(self, partner: str | None, client: str) -> tuple[str, Contact | None, str]:
        """Owner, partner contact and where they come from, for a reminder about `client`."""
        if partner is None:
            return "platform", None, "system_default"
        for key, source in (((partner, client), "client_override"), ((partner, None), "partner_default")):
            held = self.settings.get(key)
            if held is not None and held[1] is not None:
                return held[1]["owner"], held[1].get("partner_contact"), source
        return "platform", None, "system_default"


def _stamp(event: dict[str, Any]) -> Stamp:
    return datetime.fromisoformat(event["time"]), event["id"]


def _recipient(role: str, contact: Contact | None) -> dict[str, Any]:
    assert contact is not None, "the stream never asks for a partner owner without a contact"
    return {
        "role": role,
        "email": contact["email"],
        "name": contact.get("name"),
        "user_id": contact.get("user_id"),
    }
