"""Small builders of wire messages, shared by every test level."""

import itertools
import json
from typing import Any

_ids = itertools.count(1)
T0 = "2026-11-20T09:00:00+00:00"


def envelope(type_: str, data: dict[str, Any], *, id: str | None = None, time: str = T0) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id or f"evt-{next(_ids)}",
        "source": "urn:billing:test",
        "type": type_,
        "time": time,
        "data": data,
    }


def contact(name: str, domain: str = "partner.example") -> dict[str, Any]:
    return {"email": f"{name}@{domain}", "name": name.title(), "user_id": f"u-{name}"}


def renewal(
    client_id: str = "c1",
    partner_id: str | None = "p1",
    *,
    decision_maker: dict[str, Any] | None = None,
    renewal_date: str = "2026-12-20",
    days: int | None = 30,
    **envelope_fields: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {"partner_id": partner_id, "client_id": client_id, "renewal_date": renewal_date}
    if days is not None:
        data["days_until_renewal"] = days
    if decision_maker is not None:
        data["decision_maker"] = decision_maker
    return envelope("RenewalApproaching", data, **envelope_fields)


def owner_changed(
    owner: str,
    partner_id: str = "p1",
    client_id: str | None = None,
    *,
    partner_contact: dict[str, Any] | None = None,
    **envelope_fields: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {"partner_id": partner_id, "client_id": client_id, "owner": owner}
    if partner_contact is not None:
        data["partner_contact"] = partner_contact
    return envelope("OwnerChanged", data, **envelope_fields)


def encode(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()
