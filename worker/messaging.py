"""The messages as the running worker sees them, free of any client library: a delivery in, an
outgoing publish out, the safe copy of a delivery that a retry or a dead letter is made of, the
header names the worker writes, what a publish did (`Sent`), a queue's state, and the errors
that end a session (`BrokerLost` and its kinds).

This is the broker seam's neutral ground: `worker.service` and `worker.broker` both import it,
and it imports neither (nor py-amqp). The one wire fact it needs, how many bytes a header takes
encoded, is passed in (`EncodedSize`; `worker.broker.publisher.encoded_size` is the real one).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

EncodedSize = Callable[[str, Any], int | None]
"""The bytes one header (`name`, `value`) takes encoded on the wire; None if it cannot be encoded."""

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
HEADERS_DROPPED = "x-headers-dropped"
DEAD_LETTER_ID = "x-dead-letter-id"  # this dead letter's own identity: the store keeps one row per letter
REPLAY_COUNT = "x-replay-count"  # written by `renewals dlq replay`
REPLAY_OF_LETTER = "x-replay-of-letter"  # the dead letter's id a replayed (or edited) copy came from
REPLAY_OPERATION = "x-replay-operation"  # the replay operation that sent it
EDITED_FROM_MESSAGE_ID = "x-edited-from-message-id"  # an edited copy: the original's message id

OUTPUT_CONTENT_TYPE = "application/cloudevents+json"
PERSISTENT = 2
"""AMQP delivery mode of everything the worker publishes itself."""
APP_ID = "renewal-routing"

# What a copy keeps of the original's properties. Not `expiration` (the copy would expire from
# the dead-letter queue), not `user_id` (the broker refuses it from another user), not
# `delivery_mode` (copies are always persistent), not `cluster_id` (deprecated).
COPIED_PROPERTIES = (
    "content_type", "content_encoding", "priority", "correlation_id", "reply_to", "message_id",
    "timestamp", "type", "app_id",
)  # fmt: skip
# Headers that only the worker (or the broker) writes: whatever upstream put there is dropped.
OWN_HEADER_PREFIXES = ("x-original-", "x-error-", "x-worker-", "x-first-death-", "x-last-death-")
OWN_HEADERS = frozenset({FAILED_AT, ATTEMPTS, "x-death", "x-delivery-count", HEADERS_DROPPED, DEAD_LETTER_ID})
# The original's headers kept on a copy, at most (encoded): the rest are named in
# `x-headers-dropped`, so that a copy always fits in one frame with the worker's own headers.
MAX_COPIED_HEADER_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message taken from the worker's queue, independent of the client library.

    `problem` says why its properties could not be decoded (then `properties` is empty).
    A body that came in several frames is the bytearray it was assembled in (not copied
    again into bytes); nothing writes to it.
    """

    body: bytes | bytearray
    properties: dict[str, Any]
    exchange: str
    routing_key: str
    delivery_tag: int
    redelivered: bool = False
    problem: str | None = None

    @property
    def content_type(self) -> str | None:
        value = self.properties.get("content_type")
        return None if value is None else str(value)

    @property
    def headers(self) -> dict[str, Any]:
        headers = self.properties.get("application_headers")
        return headers if isinstance(headers, dict) else {}

    @property
    def is_retry(self) -> bool:
        """Came back through the default exchange: one of the worker's own retry copies (a
        delay tier dead-letters it there). Only then are its bookkeeping headers the worker's."""
        return self.exchange == ""

    @property
    def attempts(self) -> int:
        """Deliveries that already failed, as counted in the worker's own header."""
        value = self.headers.get(ATTEMPTS, 0) if self.is_retry else 0
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0

    @property
    def origin(self) -> tuple[str, str]:
        """Where the message was first published: the broker's delivery info, or for a retry
        copy what the worker recorded when it made the copy."""
        if self.is_retry:
            exchange, routing_key = (
                self.headers.get(ORIGINAL_EXCHANGE),
                self.headers.get(ORIGINAL_ROUTING_KEY),
            )
            if isinstance(exchange, str) and isinstance(routing_key, str):
                return exchange, routing_key
        return self.exchange, self.routing_key


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One publish: exchange, routing key, body bytes and AMQP properties (py-amqp names)."""

    exchange: str
    routing_key: str
    body: bytes | bytearray
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def message_id(self) -> str | None:
        value = self.properties.get("message_id")
        return None if value is None else str(value)


def safe_copy(
    delivery: Delivery,
    exchange: str,
    routing_key: str,
    headers: dict[str, Any],
    *,
    encoded_size: EncodedSize,
) -> Outgoing:
    """The delivery's body, unchanged, with a safe subset of its properties (always persistent,
    never expiring), its own headers within a size bound, and `headers` added."""
    properties = {
        name: delivery.properties[name] for name in COPIED_PROPERTIES if name in delivery.properties
    }
    kept, dropped = _bounded(
        {
            name: value
            for name, value in delivery.headers.items()
            if name not in OWN_HEADERS and not name.startswith(OWN_HEADER_PREFIXES)
        },
        encoded_size,
    )
    if dropped:
        kept[HEADERS_DROPPED] = ", ".join(sorted(dropped))[:1000]
    properties["application_headers"] = {**kept, **headers}
    properties["delivery_mode"] = PERSISTENT
    return Outgoing(exchange, routing_key, delivery.body, properties)


def bare_copy(message: Outgoing) -> Outgoing:
    """A retry or dead-letter copy that could not be encoded, made again with nothing of the
    original's properties: its body, persistent, and the worker's own headers only (as a dead
    letter of undecodable properties is)."""
    headers = message.properties.get("application_headers")
    own = {
        name: value
        for name, value in (headers if isinstance(headers, dict) else {}).items()
        if name in OWN_HEADERS or name.startswith(OWN_HEADER_PREFIXES)
    }
    return Outgoing(
        message.exchange,
        message.routing_key,
        message.body,
        {"delivery_mode": PERSISTENT, "application_headers": own},
    )


def _bounded(headers: dict[str, Any], encoded_size: EncodedSize) -> tuple[dict[str, Any], list[str]]:
    """Keep headers, smallest first, while they fit in MAX_COPIED_HEADER_BYTES; a header
    that cannot be encoded again is dropped too."""
    sizes = {}
    for name, value in headers.items():
        size = encoded_size(name, value)
        if size is not None:
            sizes[name] = size
    kept: dict[str, Any] = {}
    total = 0
    for name in sorted(sizes, key=lambda name: (sizes[name], name)):
        if total + sizes[name] > MAX_COPIED_HEADER_BYTES:
            break
        kept[name] = headers[name]
        total += sizes[name]
    return kept, [name for name in headers if name not in kept]


@dataclass(frozen=True, slots=True)
class Sent:
    """What a publisher's `send` did: the last publish tag to `wait_for`, and the messages it
    left out, by their position in the batch, with the reason."""

    tag: int
    unencodable: dict[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class QueueState:
    """A queue's `ready` messages and `consumers`, as a passive declare reports them."""

    ready: int
    consumers: int


class BrokerLost(Exception):
    """The session's link to the broker is gone or no longer serves: the session ends and the
    worker connects again. The links translate the client library's errors into this one (the
    library's error is its `__cause__`); the subclasses say what else ends a session."""


class ConsumerLost(BrokerLost):
    """The broker no longer delivers to this consumer (it cancelled it, or its queue is gone)."""


class MigrationUnderWay(BrokerLost):
    """The queue is absent while `renewals topology --migrate` holds its messages aside: it is
    not ours to create now (the migration declares it, with its own arguments, in a moment)."""


class PublishFailed(BrokerLost):
    """The broker did not confirm a publish (nack, return or timeout): transient."""


class Unencodable(ValueError):
    """A message that cannot be laid out as AMQP frames; the text says which value and why."""


def described(error: BaseException) -> str:
    """`Type: message` of what went wrong: for a translated BrokerLost, the library's own error."""
    cause = error.__cause__ if type(error) is BrokerLost and error.__cause__ is not None else error
    return f"{type(cause).__name__}: {cause}"


MAX_SHORT_STRING = 255


def short_string(text: str, what: str) -> bytes:
    """An AMQP short string: at most 255 bytes, or Unencodable naming `what`."""
    if not isinstance(text, str):
        raise Unencodable(f"{what}: {type(text).__name__} is not a string")
    encoded = text.encode("utf-8", "surrogatepass")  # as py-amqp decoded it: a copy keeps it exactly
    if len(encoded) > MAX_SHORT_STRING:
        raise Unencodable(
            f"{what} is {len(encoded)} bytes, more than an AMQP short string's {MAX_SHORT_STRING}"
        )
    return bytes((len(encoded),)) + encoded
