"""The benchmark's input: a reproducible, realistic mix of the two events, as wire messages.

About 90% RenewalApproaching over thousands of clients and partners, 10% OwnerChanged
(partner defaults and per-client overrides). Every RenewalApproaching carries a decision
maker and is a distinct reminder (client, renewal date, days), so each must yield exactly
one notification and none is dead-lettered or deduplicated away.
"""

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from events import input_routing_key

CONTENT_TYPE = "application/cloudevents+json"
_FIRST_RENEWAL = date(2027, 1, 4)
_T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
_DAYS = (60, 30, 14, 7, 1)
_PLANS = ("Starter, 5 seats", "Professional, 25 seats", "Enterprise, 250 seats")


@dataclass(frozen=True, slots=True)
class Message:
    """One event as published: its id, routing key, body, and whether it must be notified."""

    event_id: str
    routing_key: str
    body: bytes
    notifies: bool


class Mix:
    """Hands out fresh events on every `take`, never repeating a reminder or an event id."""

    def __init__(
        self,
        *,
        seed: int = 7,
        clients: int = 20_000,
        partners: int = 2_000,
        owner_changed_share: float = 0.10,
        first_renewal: date = _FIRST_RENEWAL,
    ) -> None:
        if clients % 7919 == 0:
            raise ValueError("clients must not be a multiple of 7919")
        self._random = random.Random(seed)
        self._clients = clients
        self._partners = partners
        self._share = owner_changed_share
        self._first_renewal = first_renewal
        self._reminders = 0  # every reminder is (client, renewal date) unique: see _renewal
        self._events = 0

    def take(self, count: int) -> list[Message]:
        return [self._next() for _ in range(count)]

    def stream(self, count: int) -> Iterator[Message]:
        """The same as `take`, made as it is consumed (for long runs)."""
        for _ in range(count):
            yield self._next()

    def _next(self) -> Message:
        self._events += 1
        time = _T0 + timedelta(milliseconds=self._events)
        event_id = str(uuid.UUID(int=self._random.getrandbits(128), version=4))
        if self._random.random() < self._share:
            type_, data = "OwnerChanged", self._owner_changed()
        else:
            type_, data = "RenewalApproaching", self._renewal()
        envelope = {
            "specversion": "1.0",
            "id": event_id,
            "source": "urn:billing:benchmark",
            "type": type_,
            "time": time.isoformat(),
            "subject": data["client_id"],
            "data": data,
        }
        body = json.dumps(envelope, separators=(",", ":")).encode()
        return Message(event_id, input_routing_key(type_) or "", body, type_ == "RenewalApproaching")

    def _renewal(self) -> dict[str, object]:
        number = self._reminders
        self._reminders += 1
        client = (number * 7919) % self._clients  # a permutation: clients come in a scattered order
        round_ = number // self._clients  # each pass over the clients moves the renewal date on
        return {
            "partner_id": self._partner_of(client),
            "client_id": f"client-{client:06d}",
            "client_name": f"Client {client} AB",
            "renewal_date": (self._first_renewal + timedelta(days=round_)).isoformat(),
            "days_until_renewal": self._random.choice(_DAYS),
            "subscription": self._random.choice(_PLANS),
            "decision_maker": {
                "email": f"dm.{client}@client{client}.example",
                "name": f"Decision Maker {client}",
                "user_id": f"u-c{client}",
            },
        }

    def _owner_changed(self) -> dict[str, object]:
        client = self._random.randrange(self._clients)
        partner = self._partner_of(client) or f"partner-{self._random.randrange(self._partners):05d}"
        override = self._random.random() < 0.5
        roll = self._random.random()
        owner = "partner" if roll < 0.4 else ("default" if override and roll > 0.9 else "platform")
        data: dict[str, object] = {
            "partner_id": partner,
            "client_id": f"client-{client:06d}" if override else None,
            "owner": owner,
        }
        if owner == "partner" or (owner == "platform" and self._random.random() < 0.5):
            data["partner_contact"] = {
                "email": f"renewals@{partner}.example",
                "name": f"Renewals desk {partner}",
                "user_id": f"u-{partner}",
            }
        return data

    def _partner_of(self, client: int) -> str | None:
        """One client in twenty is a direct customer (no partner)."""
        return None if client % 20 == 0 else f"partner-{client % self._partners:05d}"
