"""One dead letter as operations see it: why it failed, where it came from, how to replay it.

Two kinds arrive in the dead-letter queue: the worker's own (with `x-error-*` and
`x-original-*` headers, see worker/service/failures.py) and the broker's (a quorum delivery limit,
with RabbitMQ's `x-death` headers). Both read the same way here.
"""

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from events import ACCEPTED_CONTENT_TYPES
from worker.service.messages import (
    ATTEMPTS,
    ERROR_DETAIL,
    ERROR_REASON,
    FAILED_AT,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
)

REPLAY_COUNT = "x-replay-count"
DETAIL_WIDTH = 80
PROPERTY_NAMES = (
    "content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
    "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id",
)  # fmt: skip
# What a replay drops: the failure's explanation and the worker's own retry bookkeeping.
_DROPPED_PREFIXES = ("x-error-", "x-worker-", "x-original-", "x-first-death-", "x-last-death-")
_DROPPED = frozenset({FAILED_AT, ATTEMPTS, "x-death", "x-delivery-count", REPLAY_COUNT})


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message read from the dead-letter queue; `position` is 1-based, in queue order."""

    position: int
    body: bytes
    properties: dict[str, Any]
    headers: dict[str, Any]
    document: dict[str, Any] | None

    @classmethod
    def read(cls, position: int, properties: dict[str, Any], body: bytes) -> "DeadLetter":
        """From AMQP properties (pika names, `headers` among them) and the raw body."""
        headers = dict(properties.get("headers") or {})
        kept = {name: properties[name] for name in PROPERTY_NAMES if properties.get(name) is not None}
        return cls(position, body, kept, headers, _json_object(body, kept.get("content_type")))

    @property
    def id(self) -> str | None:
        return _text(self._event("id")) or _text(self.properties.get("message_id"))

    @property
    def type(self) -> str | None:
        return _text(self._event("type")) or _text(self.properties.get("type"))

    @property
    def reason(self) -> str:
        death = self._death()
        return (
            _text(self.headers.get(ERROR_REASON))
            or _text(death.get("reason"))
            or _text(self.headers.get("x-first-death-reason"))
            or "unknown"
        )

    @property
    def detail(self) -> str:
        detail = _text(self.headers.get(ERROR_DETAIL))
        if detail is not None:
            return detail
        death = self._death()
        if death:
            queue, count = death.get("queue"), death.get("count")
            return f"dead-lettered by the broker from {queue} ({self.reason}, count {count})"
        return "no explanation in the headers"

    @property
    def failed_at(self) -> datetime | None:
        stamp = self.headers.get(FAILED_AT)
        if isinstance(stamp, str):
            try:
                return _utc(datetime.fromisoformat(stamp))
            except ValueError:
                return None
        when = self._death().get("time")
        return _utc(when) if isinstance(when, datetime) else None

    @property
    def attempts(self) -> int | None:
        for name in (ATTEMPTS, "x-delivery-count"):
            value = self.headers.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    @property
    def origin(self) -> tuple[str, str] | None:
        """The exchange and routing key the message was first published to, if known."""
        exchange, routing_key = (
            self.headers.get(ORIGINAL_EXCHANGE),
            self.headers.get(ORIGINAL_ROUTING_KEY),
        )
        if isinstance(exchange, str) and isinstance(routing_key, str):
            return exchange, routing_key
        death = self._death()
        keys = death.get("routing-keys")
        if isinstance(death.get("exchange"), str) and isinstance(keys, list) and keys:
            return str(death["exchange"]), str(keys[0])
        return None

    @property
    def replay_count(self) -> int:
        value = self.headers.get(REPLAY_COUNT, 0)
        return value if isinstance(value, int) and value >= 0 else 0

    def summary(self) -> dict[str, Any]:
        """The row `dlq list` prints: one line per dead letter."""
        origin = self.origin
        failed_at = self.failed_at
        return {
            "position": self.position,
            "id": self.id,
            "type": self.type,
            "reason": self.reason,
            "detail": " ".join(self.detail.split()),
            "failed_at": None if failed_at is None else failed_at.isoformat(timespec="milliseconds"),
            "attempts": self.attempts,
            "replays": self.replay_count,
            "exchange": None if origin is None else origin[0],
            "routing_key": None if origin is None else origin[1],
        }

    def replay_properties(self) -> dict[str, Any]:
        """Body and properties kept; the failure's headers dropped; `x-replay-count` + 1."""
        headers = {
            name: value
            for name, value in self.headers.items()
            if name not in _DROPPED and not name.startswith(_DROPPED_PREFIXES)
        }
        headers[REPLAY_COUNT] = self.replay_count + 1
        return {**self.properties, "headers": headers}

    def as_record(self) -> dict[str, Any]:
        """Everything, JSON-safe: what `show --json` prints and `export` writes per line."""
        encoding, body = body_text(self.body)
        return {
            **self.summary(),
            "properties": plain(self.properties),
            "headers": plain(self.headers),
            "body_encoding": encoding,
            "body": body,
        }

    def _event(self, name: str) -> Any:
        return None if self.document is None else self.document.get(name)

    def _death(self) -> dict[str, Any]:
        """The latest of RabbitMQ's `x-death` entries (it lists the most recent first)."""
        deaths = self.headers.get("x-death")
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict):
            return deaths[0]
        return {}


def body_text(body: bytes) -> tuple[str, str]:
    """The exact body as ("utf-8", text) when it decodes, else ("base64", ascii)."""
    try:
        return "utf-8", body.decode("utf-8")
    except UnicodeDecodeError:
        return "base64", base64.b64encode(body).decode("ascii")


def plain(value: Any) -> Any:
    """AMQP field values (datetimes, bytes, decimals, nested tables) as JSON-safe values."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, datetime):
        return _utc(value).isoformat()
    if isinstance(value, bytes):
        return body_text(value)[1]
    if isinstance(value, Decimal):
        return str(value)
    return value


def _json_object(body: bytes, content_type: Any) -> dict[str, Any] | None:
    """Only JSON is ever deserialised, and only when the message says it is JSON."""
    media_type = str(content_type or "").split(";")[0].strip().lower()
    if media_type not in ACCEPTED_CONTENT_TYPES:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
