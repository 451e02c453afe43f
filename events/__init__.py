"""The wire contract: CloudEvents 1.0 envelopes, their payloads, and one `parse` entry point.

This package imports nothing of ours; everything else imports it.
"""

from events.errors import InvalidInput
from events.models import (
    Contact,
    Event,
    NotificationRequested,
    NotificationRequestedData,
    OwnerChanged,
    OwnerChangedData,
    Recipient,
    RenewalApproaching,
    RenewalApproachingData,
)
from events.parsing import ACCEPTED_CONTENT_TYPES, MAX_BODY_BYTES, parse, parse_notification
from events.schemas import json_schemas

__all__ = [
    "ACCEPTED_CONTENT_TYPES",
    "MAX_BODY_BYTES",
    "Contact",
    "Event",
    "InvalidInput",
    "NotificationRequested",
    "NotificationRequestedData",
    "OwnerChanged",
    "OwnerChangedData",
    "Recipient",
    "RenewalApproaching",
    "RenewalApproachingData",
    "json_schemas",
    "parse",
    "parse_notification",
]
