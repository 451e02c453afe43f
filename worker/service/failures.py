"""Errors are classified here and nowhere else: dead-letter now, or retry and then dead-letter."""

import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.config import JsonDict
from pydantic.json_schema import SkipJsonSchema

from events import InvalidInput, Reason
from worker.messaging import (
    ATTEMPTS,
    DEAD_LETTER_ID,
    ERROR_DETAIL,
    ERROR_REASON,
    ERROR_TRACEBACK,
    FAILED_AT,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    WORKER_HOST,
    WORKER_VERSION,
    Delivery,
    EncodedSize,
    Outgoing,
    PublishFailed,
    safe_copy,
)
from worker.settings import VERSION, Settings
from worker.store import StoreConflict, StoreUnavailable

MAX_DETAIL = 1024
MAX_TRACEBACK = 4096

Kind = Literal["invalid", "transient", "bug"]
DeadLetterReason = Literal[Reason, "retries_exhausted"]
"""Every `x-error-reason` the worker writes: the contract's reasons, or retries used up."""


def _absent_not_null(schema: JsonDict) -> None:
    """An optional header is left out, never null: the schema shows no `default: null`."""
    del schema["default"]


# What `FailurePolicy.dead_letter` writes, as docs/asyncapi.yaml publishes it; a unit test holds
# the one to the other. The docstring and descriptions are the contract's text.
class DeadLetterHeaders(BaseModel):
    """What the worker adds to the headers of a message it dead-letters; the others stay."""

    model_config = ConfigDict(extra="allow", frozen=True)

    error_reason: DeadLetterReason = Field(alias=ERROR_REASON, description="Why the worker gave up.")
    error_detail: str = Field(alias=ERROR_DETAIL, max_length=MAX_DETAIL, description="What was wrong.")
    error_traceback: str | SkipJsonSchema[None] = Field(
        None,
        alias=ERROR_TRACEBACK,
        max_length=MAX_TRACEBACK,
        description="The end of the Python traceback, when retries_exhausted follows an exception.",
        json_schema_extra=_absent_not_null,
    )
    original_exchange: str = Field(alias=ORIGINAL_EXCHANGE, description="Where it was first published.")
    original_routing_key: str = Field(alias=ORIGINAL_ROUTING_KEY, description="Its routing key there.")
    failed_at: AwareDatetime = Field(alias=FAILED_AT, description="When the worker gave up.")
    attempts: int = Field(alias=ATTEMPTS, ge=1, description="Deliveries that failed, the last included.")
    worker_version: str = Field(alias=WORKER_VERSION, description="The worker's package version.")
    worker_host: str = Field(alias=WORKER_HOST, description="The host name of the worker that gave up.")
    dead_letter_id: str = Field(
        alias=DEAD_LETTER_ID,
        description="This dead letter's own id: the worker's store records each dead letter once by it.",
    )


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one delivery, and what to publish instead of acknowledging it bare:
    a delayed retry (reason: the failure's kind) or a dead letter (reason: why it is dead)."""

    outcome: Literal["message.retry_scheduled", "message.dead_lettered"]
    kind: Kind
    reason: str
    detail: str
    outgoing: Outgoing
    delay: float | None = None  # seconds, for a retry: its delay tier


# A delivery's failures worth retrying later. Not `runtime.BROKER_TROUBLE`, which says what
# ends a session and is cured by reconnecting to the broker.
TRANSIENT: tuple[type[BaseException], ...] = (
    StoreConflict,
    StoreUnavailable,
    PublishFailed,
    TimeoutError,
    ConnectionError,
)


def classify(exc: BaseException) -> Kind:
    """Invalid input (dead-letter now), transient (retry later), or a bug (retry, then
    dead-letter with the traceback)."""
    if isinstance(exc, InvalidInput):
        return "invalid"
    if isinstance(exc, TRANSIENT):
        return "transient"
    return "bug"


class FailurePolicy:
    """Turns an exception on a delivery into a dead letter or a delayed retry."""

    def __init__(self, settings: Settings, *, encoded_size: EncodedSize) -> None:
        self._settings = settings
        self._host = settings.host
        self._encoded_size = encoded_size  # the wire's measure of a header, for the copies' bound

    def handle(self, delivery: Delivery, exc: BaseException) -> Failure:
        kind = classify(exc)
        attempts = delivery.attempts + 1
        if isinstance(exc, InvalidInput):
            return self.dead_letter(delivery, exc.reason, exc.detail, attempts)
        detail = f"{kind}: {type(exc).__name__}: {exc}"
        if attempts >= self._settings.max_attempts:
            trace = "".join(traceback.format_exception(exc, limit=8))
            return self.dead_letter(delivery, "retries_exhausted", detail, attempts, trace, kind=kind)
        queue, delay = self._settings.retry_queue(attempts)
        exchange, routing_key = delivery.origin
        retry = safe_copy(
            delivery,
            "",
            queue,
            {ATTEMPTS: attempts, ORIGINAL_EXCHANGE: exchange, ORIGINAL_ROUTING_KEY: routing_key},
            encoded_size=self._encoded_size,
        )
        return Failure("message.retry_scheduled", kind, kind, f"{detail} (retry in {delay:g}s)", retry, delay)

    def dead_letter(
        self,
        delivery: Delivery,
        reason: DeadLetterReason,
        detail: str,
        attempts: int,
        trace: str | None = None,
        *,
        kind: Kind = "invalid",
    ) -> Failure:
        """The original body and a safe copy of its properties, plus the headers that say
        why it failed (docs/domain.md lists them)."""
        exchange, routing_key = delivery.origin
        headers = {
            ERROR_REASON: reason,
            ERROR_DETAIL: detail[:MAX_DETAIL],
            ORIGINAL_EXCHANGE: exchange,
            ORIGINAL_ROUTING_KEY: routing_key,
            FAILED_AT: datetime.now(UTC).isoformat(timespec="milliseconds"),
            ATTEMPTS: attempts,
            WORKER_VERSION: VERSION,
            WORKER_HOST: self._host,
            DEAD_LETTER_ID: uuid.uuid4().hex,
        }
        if trace is not None:
            headers[ERROR_TRACEBACK] = trace[-MAX_TRACEBACK:]
        outgoing = safe_copy(
            delivery, "", self._settings.dead_letter_queue, headers, encoded_size=self._encoded_size
        )
        return Failure("message.dead_lettered", kind, reason, detail, outgoing)
