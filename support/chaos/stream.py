"""A seeded stream and what it should give, in two phases that make the expectation exact.

Phase 1 holds every OwnerChanged (several versions per key, shuffled, so most arrive out of
order; some repeated) and the reminders that teach the worker decision makers (for direct
customers, whose notifications depend on no setting). Phase 2, sent once phase 1 is fully
handled, holds the reminders whose recipients depend on those settings and decision makers:
for a client, either every reminder names its decision maker or none does, so arrival order
across workers cannot change who is addressed. Both phases carry repeats (the same event id
again), twins (the same reminder under a second event id: one notification, either id) and a
share of every bad input.
"""

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from support.chaos.poison import poisons
from support.chaos.rules import Rules
from support.client import NAMES

BASE = datetime(2025, 1, 6, tzinfo=UTC)  # event times stay in the past: never "too far ahead"
ZONES = (UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5, minutes=-30)))
EVENT_TYPE = "application/cloudevents+json"
FORGED = {"x-original-exchange": NAMES.notifications_exchange, "x-attempts": 99, "x-error-reason": "forged"}


@dataclass(frozen=True)
class Message:
    """One publish: `label` names it in logs (an event id, or the bad input's marker)."""

    label: str
    routing_key: str
    body: bytes
    properties: dict[str, Any]
    raw_headers: bytes | None = None


@dataclass(frozen=True)
class Reminder:
    """One reminder as billing means it: the ids it was sent under and the notification `data`
    it must give (its ids aside). Exactly one notification, under one of those ids."""

    event_ids: frozenset[str]
    data: dict[str, Any]


@dataclass(frozen=True)
class Expected:
    """The dead letter a body must become: its reason, and the class of input it came from."""

    label: str
    reason: str
    kind: str
    forged_origin: bool = False


@dataclass
class Stream:
    seed: int
    phases: tuple[list[Message], list[Message]] = field(default_factory=lambda: ([], []))
    reminders: list[Reminder] = field(default_factory=list)
    dead_letters: dict[bytes, Expected] = field(default_factory=dict)
    census: Counter[str] = field(default_factory=Counter)

    @property
    def size(self) -> int:
        return sum(len(phase) for phase in self.phases)


def build(seed: int, size: int) -> Stream:
    """About `size` messages (at least), the same for the same seed."""
    return _Builder(seed).build(size)


class _Builder:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.stream = Stream(seed)
        self.rules = Rules()
        self.ids = 0
        self.settings: list[dict[str, Any]] = []
        self.seeds: list[dict[str, Any]] = []
        self.later: list[dict[str, Any]] = []  # phase 2 reminders
        self.partners: list[tuple[str, list[dict[str, Any]]]] = []

    def build(self, size: int) -> Stream:
        rng, stream = self.rng, self.stream
        bad = max(20, size // 20)
        while len(self.settings) + len(self.seeds) + len(self.later) * 1.08 < size - bad:
            self._client()
        for event in self.seeds:
            self.rules.reminder_seen(event)
        phase1 = [self._message(event) for event in self.settings]
        phase2: list[Message] = []
        for event in self.seeds:
            phase1.append(self._expect(event, phase1, twins=False))
        for event in self.later:
            phase2.append(self._expect(event, phase2, twins=True))
        for phase in (phase1, phase2):
            repeats = [m for m in phase if m.body not in stream.dead_letters and rng.random() < 0.03]
            phase += repeats
            stream.census["repeats (same id again)"] += len(repeats)
        bad = max(bad, size - len(phase1) - len(phase2))  # "at least `size`", exactly
        for n, (kind, marker, poison) in enumerate(poisons(bad, rng.choice, lambda: self._id("bad"))):
            stream.dead_letters[poison.body] = Expected(marker, poison.reason, kind, poison.forged_origin)
            message = Message(marker, poison.routing_key, poison.body, poison.properties, poison.raw_headers)
            (phase1 if n % 5 < 2 else phase2).append(message)
            stream.census[f"bad: {kind}"] += 1
        rng.shuffle(phase1)
        rng.shuffle(phase2)
        stream.phases = (phase1, phase2)
        stream.census["owner changes"] = len(self.settings)
        stream.census["reminders teaching decision makers (phase 1)"] = len(self.seeds)
        stream.census["reminders (phase 2)"] = len(self.later)
        return stream

    def _expect(self, event: dict[str, Any], phase: list[Message], twins: bool) -> Message:
        """The reminder's message; its expectation (and maybe a twin, added to `phase`) noted."""
        stream = self.stream
        message = self._message(event, forged=twins and self.rng.random() < 0.02)
        expected = self.rules.notification(event)
        if expected is None:
            stream.dead_letters[message.body] = Expected(event["id"], "no_recipient", "no recipient")
            stream.census["reminders for nobody"] += 1
            return message
        ids = {event["id"]}
        if twins and self.rng.random() < 0.04:
            twin = event | {"id": self._id("twin")}
            phase.append(self._message(twin))
            ids.add(twin["id"])
            stream.census["twins (a reminder under a 2nd id)"] += 1
        stream.reminders.append(Reminder(frozenset(ids), expected))
        return message

    def _client(self) -> None:
        rng = self.rng
        if not self.partners or rng.random() < 0.03:
            self._partner()
        partner, contacts = rng.choice(self.partners)
        client = self._id("c")
        direct = rng.random() < 0.08
        if not direct and rng.random() < 0.3:
            self._versions(partner, client, contacts)
        days = iter([30, 7, 1, 14, 60, 90, 3])
        policy = rng.choice(["seeded", "carrying", "carrying", "bare"])
        if policy == "seeded":
            for n in range(rng.randint(1, 3)):
                self.seeds.append(self._reminder(client, None, 200 + n, self._contact("client.example")))
        owner = None if direct else partner
        for _ in range(rng.randint(1, 2)):
            maker = self._maker(owner, client) if policy == "carrying" else None
            self.later.append(self._reminder(client, owner, next(days), maker))
        if not direct and rng.random() < 0.05:  # the same client under another partner
            other = rng.choice(self.partners)[0]
            maker = self._maker(other, client) if policy == "carrying" else None
            self.later.append(self._reminder(client, other, next(days), maker))

    def _partner(self) -> None:
        partner = self._id("p")
        contacts = [self._contact("partner.example") for _ in range(3)]
        self.partners.append((partner, contacts))
        self._versions(partner, None, contacts)

    def _versions(self, partner: str, client: str | None, contacts: list[dict[str, Any]]) -> None:
        """0 to 4 changes of one setting key, at increasing times (sometimes equal: the id decides)."""
        moment = BASE + timedelta(seconds=self.rng.randint(0, 20_000_000))
        for _ in range(self.rng.choice([0, 1, 1, 2, 3, 4] if client is None else [1, 2, 3])):
            if self.rng.random() > 0.1:
                moment += timedelta(
                    seconds=self.rng.randint(1, 500_000), microseconds=self.rng.randint(0, 999)
                )
            owners = ["platform", "platform", "partner"] + (["default"] if client else [])
            owner = self.rng.choice(owners)
            data: dict[str, Any] = {"partner_id": partner, "client_id": client, "owner": owner}
            if owner == "partner" or (owner == "platform" and self.rng.random() < 0.6):
                data["partner_contact"] = self.rng.choice(contacts)
            self.settings.append(self._event("OwnerChanged", self._id("oc"), moment, data))
            self.rules.owner_changed(self.settings[-1])

    def _reminder(
        self, client: str, partner: str | None, days: int, maker: dict[str, Any] | None
    ) -> dict[str, Any]:
        moment = BASE + timedelta(seconds=self.rng.randint(0, 25_000_000))
        data: dict[str, Any] = {
            "partner_id": partner,
            "client_id": client,
            "client_name": self.rng.choice([None, f"Client {client}"]),
            "renewal_date": f"2031-{self.rng.randint(1, 12):02d}-{self.rng.randint(1, 28):02d}",
            "days_until_renewal": days,
            "subscription": self.rng.choice([None, "pro", "team"]),
        }
        if maker is not None:
            data["decision_maker"] = maker
        return self._event("RenewalApproaching", self._id("ra"), moment, data)

    def _maker(self, partner: str | None, client: str) -> dict[str, Any]:
        """A decision maker; now and then the partner contact who applies, in other letters
        (one person in both roles: one message, no cc). Every setting of the client's keys is
        made before its reminders, so the contact that applies is known here."""
        contact = self.rules.effective(partner, client)[1]
        if contact is not None and self.rng.random() < 0.15:
            return {"email": contact["email"].upper(), "name": "Both Roles"}
        return self._contact("client.example")

    def _contact(self, domain: str) -> dict[str, Any]:
        name = self._id("u")
        contact: dict[str, Any] = {"email": f"{name}@{domain}"}
        if self.rng.random() < 0.8:
            contact |= {"name": name.title(), "user_id": f"id-{name}"}
        return contact

    def _event(self, type_: str, id_: str, moment: datetime, data: dict[str, Any]) -> dict[str, Any]:
        when = moment.astimezone(self.rng.choice(ZONES)).isoformat()
        return {
            "specversion": "1.0",
            "id": id_,
            "source": "urn:billing:chaos",
            "type": type_,
            "time": when,
            "data": data,
        }

    def _message(self, event: dict[str, Any], forged: bool = False) -> Message:
        key = "owner.changed" if event["type"] == "OwnerChanged" else "renewal.approaching"
        properties: dict[str, Any] = {
            "content_type": EVENT_TYPE,
            "delivery_mode": 2,
            "message_id": event["id"],
        }
        if forged:
            properties["application_headers"] = FORGED
            self.stream.census["good events with forged origin headers"] += 1
        return Message(event["id"], key, json.dumps(event).encode(), properties)

    def _id(self, prefix: str) -> str:
        self.ids += 1
        return f"{prefix}-{self.ids:06d}"
