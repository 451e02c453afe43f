"""JSON Schemas of the three messages, for publishers and consumers in other languages."""

from typing import Any

from events.models import NotificationRequested, OwnerChanged, RenewalApproaching


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each message, keyed by its CloudEvents `type`."""
    return {
        model.__name__: model.model_json_schema()
        for model in (RenewalApproaching, OwnerChanged, NotificationRequested)
    }
