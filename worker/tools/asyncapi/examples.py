"""One example per message of the contract, in the shape of the tests' builders
(support/messages.py), telling one story: partner p1 makes the platform the owner with Alice
copied; a reminder for its client c1, whose decision maker is Dora, becomes a notification to
Dora with Alice in cc; a reminder for c2 of partner p2, where nobody can be addressed, is
dead-lettered.

`examples` checks each one as the worker would, payloads with its own parsers and dead-letter
headers with `DeadLetterHeaders`, and raises (InvalidInput, ValidationError) on one they refuse.
"""

import json
from datetime import timedelta
from typing import Any

from events import RenewalApproaching, parse, parse_notification
from events.registry import RENEWAL_APPROACHING
from handlers import ReminderKey, notification_id_for
from worker import messaging as messages
from worker.service.failures import DeadLetterHeaders
from worker.settings import VERSION, Settings

T0 = "2026-11-20T09:00:00+00:00"
DORA = {"email": "dora@client.example", "name": "Dora", "user_id": "u-dora"}
ALICE = {"email": "alice@partner.example", "name": "Alice", "user_id": "u-alice"}
RENEWAL = {
    "partner_id": "p1",
    "client_id": "c1",
    "client_name": "Client One",
    "renewal_date": "2026-12-20",
    "days_until_renewal": 30,
    "subscription": "Marketing Hub Pro",
}


def examples(settings: Settings) -> dict[str, dict[str, Any]]:
    """AsyncAPI message examples keyed by message name, each checked against its model."""
    renewal = envelope("RenewalApproaching", "evt-1", {**RENEWAL, "decision_maker": DORA})
    owner = envelope(
        "OwnerChanged", "evt-2", {"partner_id": "p1", "owner": "platform", "partner_contact": ALICE}
    )
    reminder = parse(json.dumps(renewal).encode(), "application/json", max_future=timedelta.max)
    assert isinstance(reminder, RenewalApproaching)
    notification_id = notification_id_for(
        ReminderKey(reminder.data.client_id, reminder.data.renewal_date, reminder.days_until_renewal)
    )
    notification = envelope(
        "NotificationRequested",
        notification_id,
        {
            "notification_id": notification_id,
            "causation_id": renewal["id"],
            "kind": "renewal_reminder",
            **RENEWAL,
            "owner": "platform",
            "resolved_from": "partner_default",
            "audience": "both",
            "to": [{"role": "decision_maker", **DORA}],
            "cc": [{"role": "partner_contact", **ALICE}],
            "fallback": None,
        },
        source=settings.source,
        time="2026-11-20T09:00:01.250Z",
        subject=RENEWAL["client_id"],
    )
    stranger = {**RENEWAL, "partner_id": "p2", "client_id": "c2", "client_name": "Client Two"}
    unaddressable = envelope("RenewalApproaching", "evt-3", stranger)
    headers = {
        messages.ERROR_REASON: "no_recipient",
        messages.ERROR_DETAIL: (
            "owner is 'platform', no decision maker is known and no partner contact is set"
        ),
        messages.ORIGINAL_EXCHANGE: settings.events_exchange,
        messages.ORIGINAL_ROUTING_KEY: RENEWAL_APPROACHING.routing_key,
        messages.FAILED_AT: "2026-11-20T09:00:01.250+00:00",
        messages.ATTEMPTS: 1,
        messages.WORKER_VERSION: VERSION,
        messages.WORKER_HOST: "worker-1",
        messages.DEAD_LETTER_ID: "3f2a9c1e5b7d4e0f8a6b2c4d1e3f5a7b",
    }
    for event in (renewal, owner, unaddressable):
        parse(json.dumps(event).encode(), messages.OUTPUT_CONTENT_TYPE)
    parse_notification(json.dumps(notification).encode())
    DeadLetterHeaders.model_validate(headers)
    return {
        "RenewalApproaching": {"name": "renewal", "payload": renewal},
        "OwnerChanged": {"name": "partnerDefault", "payload": owner},
        "NotificationRequested": {"name": "toDecisionMakerCopyContact", "payload": notification},
        "DeadLetter": {"name": "noRecipient", "headers": headers, "payload": unaddressable},
    }


def envelope(type_: str, id_: str, data: dict[str, Any], **attributes: Any) -> dict[str, Any]:
    """A CloudEvents 1.0 envelope, as support.messages.envelope builds it."""
    return {
        "specversion": "1.0",
        "id": id_,
        "source": "urn:billing:example",
        "type": type_,
        "time": T0,
        **attributes,
        "data": data,
    }
