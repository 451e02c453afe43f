"""One dead letter as operations see it: why it failed, where it came from, how to replay it.

Two kinds arrive in the dead-letter queue: the worker's own (with `x-error-*` and
`x-original-*` headers, see worker/service/failures.py) and the broker's (a quorum delivery limit,
with RabbitMQ's `x-death` headers). Both read the same way here.

Every header is untrusted (anyone who can publish to the worker's queue shapes what lands
here), so every property below is total: any header table in, a sane value or None out, never
an exception. `values` holds the readers. Properties and headers are bounded in depth and size
(`worker.boundary.bounded`) as a letter is read, whichever tool reads it.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.boundary import bounded
from worker.dead_letters import values
from worker.messaging import (
    ATTEMPTS,
    ERROR_DETAIL,
    ERROR_REASON,
    FAILED_AT,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    OWN_HEADER_PREFIXES,
    OWN_HEADERS,
    REPLAY_COUNT,
    REPLAY_OF_LETTER,
    REPLAY_OPERATION,
)

DETAIL_WIDTH = 80
PROPERTY_NAMES = (
    "content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
    "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id",
)  # fmt: skip
# What a replay drops: the failure's explanation and the worker's and the broker's bookkeeping
# (the replay count and the letter and operation a copy comes from are then set afresh).
_DROPPED_PREFIXES = OWN_HEADER_PREFIXES
_DROPPED = OWN_HEADERS | {REPLAY_COUNT, REPLAY_OF_LETTER, REPLAY_OPERATION}


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A dead letter as operations read it; `position` is its record number in the store (1-based,
    in arrival order)."""

    position: int
    body: bytes
    properties: dict[str, Any]
    headers: dict[str, Any]
    document: dict[str, Any] | None
    problem: str | None = None  # why its properties could not be decoded (then there are none)

    @classmethod
    def read(
        cls, position: int, properties: dict[str, Any], body: bytes, problem: str | None = None
    ) -> "DeadLetter":
        """From AMQP properties (the 0-9-1 specification's names, `headers` among them) and the raw body; what
        properties and headers hold past `worker.boundary`'s bounds is kept marked and cut."""
        table = properties.get("headers")
        headers: dict[str, Any] = bounded(dict(table)) if isinstance(table, Mapping) else {}
        kept: dict[str, Any] = bounded(
            {name: properties[name] for name in PROPERTY_NAMES if properties.get(name) is not None}
        )
        return cls(position, body, kept, headers, values.json_object(body, kept.get("content_type")), problem)

    @property
    def id(self) -> str | None:
        return values.text(self._event("id")) or values.text(self.properties.get("message_id"))

    @property
    def type(self) -> str | None:
        return values.text(self._event("type")) or values.text(self.properties.get("type"))

    @property
    def reason(self) -> str:
        death = self._death()
        return (
            values.text(self.headers.get(ERROR_REASON))
            or values.text(death.get("reason"))
            or values.text(self.headers.get("x-first-death-reason"))
            or ("invalid_properties" if self.problem else "unknown")
        )

    @property
    def detail(self) -> str:
        detail = values.text(self.headers.get(ERROR_DETAIL))
        if detail is not None:
            return detail
        death = self._death()
        if death:
            queue = values.text(death.get("queue")) or "an unnamed queue"
            count = values.count(death.get("count"))
            times = "?" if count is None else count
            return f"dead-lettered by the broker from {queue} ({self.reason}, count {times})"
        if self.problem:
            return f"its properties could not be decoded: {self.problem}"
        return "no explanation in the headers"

    @property
    def failed_at(self) -> datetime | None:
        """The worker's x-failed-at, else the broker's x-death time; in UTC, but a time UTC
        cannot hold (year 9999 at -23:59) keeps its own offset and still compares exactly."""
        return values.moment(self.headers.get(FAILED_AT)) or values.moment(self._death().get("time"))

    @property
    def attempts(self) -> int | None:
        """The worker's count of failed deliveries (not the quorum queue's x-delivery-count,
        which a quorum dead-letter queue raises each time the letter is read)."""
        return values.count(self.headers.get(ATTEMPTS))

    @property
    def origin(self) -> tuple[str, str] | None:
        """The exchange and routing key the message was first published to, if known."""
        exchange = values.string(self.headers.get(ORIGINAL_EXCHANGE))
        routing_key = values.string(self.headers.get(ORIGINAL_ROUTING_KEY))
        if exchange is not None and routing_key is not None:
            return exchange, routing_key
        death = self._death()
        exchange, keys = values.string(death.get("exchange")), death.get("routing-keys")
        first_key = values.string(keys[0]) if isinstance(keys, (list, tuple)) and keys else None
        if exchange is not None and first_key is not None:
            return exchange, first_key
        return None

    @property
    def replay_count(self) -> int:
        """How often operations replayed it; 0 where the header is missing or not a count."""
        return values.count(self.headers.get(REPLAY_COUNT)) or 0

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

    def replay_properties(self, operation_id: str | None = None) -> dict[str, Any]:
        """Body and properties kept; the failure's headers dropped; `x-replay-count` + 1; and,
        for a replay operation, the letter (its `position`) and the operation the copy comes
        from (`x-replay-of-letter`, `x-replay-operation`), so that its fate finds them."""
        headers = {
            name: value
            for name, value in self.headers.items()
            if name not in _DROPPED and not name.startswith(_DROPPED_PREFIXES)
        }
        headers[REPLAY_COUNT] = self.replay_count + 1
        if operation_id is not None:
            headers[REPLAY_OF_LETTER] = self.position
            headers[REPLAY_OPERATION] = operation_id
        return {**self.properties, "headers": headers}

    def as_record(self) -> dict[str, Any]:
        """Everything, JSON-safe: what `show --json` prints and `export` writes per line."""
        encoding, body = values.body_text(self.body)
        return {
            **self.summary(),
            "properties": values.plain(self.properties),
            "headers": values.plain(self.headers),
            "body_encoding": encoding,
            "body": body,
        }

    def _event(self, name: str) -> Any:
        return None if self.document is None else self.document.get(name)

    def _death(self) -> Mapping[str, Any]:
        """The latest of RabbitMQ's `x-death` entries (it lists the most recent first)."""
        deaths = self.headers.get("x-death")
        if isinstance(deaths, (list, tuple)) and deaths and isinstance(deaths[0], Mapping):
            return deaths[0]
        return {}
