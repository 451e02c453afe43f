"""The wire contract: CloudEvents 1.0 envelopes, their payloads, and one `parse` entry point.

This package imports nothing of ours; everything else imports it.
"""

from events.errors import InvalidInput, Reason
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
from events.parsing import (
    ACCEPTED_CONTENT_TYPES,
    DEFAULT_MAX_FUTURE,
    MAX_BODY_BYTES,
    parse,
    parse_notification,
)
from events.registry import (
    INPUT_ROUTING_KEYS,
    INPUTS,
    NOTIFICATION_REQUESTED,
    MessageKind,
    input_routing_key,
    notification_routing_key,
)
from events.schemas import json_schemas

__all__ = [
    "ACCEPTED_CONTENT_TYPES",
    "DEFAULT_MAX_FUTURE",
    "INPUTS",
    "INPUT_ROUTING_KEYS",
    "MAX_BODY_BYTES",
    "NOTIFICATION_REQUESTED",
    "Contact",
    "Event",
    "InvalidInput",
    "MessageKind",
    "NotificationRequested",
    "NotificationRequestedData",
    "OwnerChanged",
    "OwnerChangedData",
    "Reason",
    "Recipient",
    "RenewalApproaching",
    "RenewalApproachingData",
    "input_routing_key",
    "json_schemas",
    "notification_routing_key",
    "parse",
    "parse_notification",
]
