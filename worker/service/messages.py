"""AMQP messages as the worker sees them: a delivery in, an outgoing publish out."""

from dataclasses import dataclass, field
from typing import Any

# The headers the worker writes on its retry and dead-letter copies; everything that reads or
# documents them (the dead-letter tools, the AsyncAPI contract) takes the names from here.
ERROR_REASON = "x-error-reason"
ERROR_DETAIL = "x-error-detail"
ERROR_TRACEBACK = "x-error-traceback"
ORIGINAL_EXCHANGE = "x-original-exchange"
ORIGINAL_ROUTING_KEY = "x-original-routing-key"
FAILED_AT = "x-failed-at"
ATTEMPTS = "x-attempts"
WORKER_VERSION = "x-worker-version"
WORKER_HOST = "x-worker-host"

OUTPUT_CONTENT_TYPE = "application/cloudevents+json"
PERSISTENT = 2
"""AMQP delivery mode of everything the worker publishes itself."""
APP_ID = "renewal-routing"


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message taken from the worker's queue, independent of the client library."""

    body: bytes
    properties: dict[str, Any]
    exchange: str
    routing_key: str
    delivery_tag: int
    redelivered: bool = False

    @property
    def content_type(self) -> str | None:
        value = self.properties.get("content_type")
        return None if value is None else str(value)

    @property
    def headers(self) -> dict[str, Any]:
        return self.properties.get("application_headers") or {}

    @property
    def attempts(self) -> int:
        """Deliveries that already failed, as counted in the worker's own header."""
        value = self.headers.get(ATTEMPTS, 0)
        return value if isinstance(value, int) and value >= 0 else 0

    @property
    def origin(self) -> tuple[str, str]:
        """Where the message was first published (a retry copy remembers it in headers)."""
        headers = self.headers
        return (
            str(headers.get(ORIGINAL_EXCHANGE, self.exchange)),
            str(headers.get(ORIGINAL_ROUTING_KEY, self.routing_key)),
        )


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One publish: exchange, routing key, body bytes and AMQP properties (py-amqp names)."""

    exchange: str
    routing_key: str
    body: bytes
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def message_id(self) -> str | None:
        value = self.properties.get("message_id")
        return None if value is None else str(value)


def copy_with_headers(delivery: Delivery, exchange: str, routing_key: str, **headers: Any) -> Outgoing:
    """The delivery's body and properties unchanged, with `headers` added or replaced."""
    properties = dict(delivery.properties)
    properties["application_headers"] = {**delivery.headers, **headers}
    return Outgoing(exchange, routing_key, delivery.body, properties)
