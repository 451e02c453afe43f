"""Errors are classified here and nowhere else: dead-letter now, or retry and then dead-letter."""

import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from events import InvalidInput
from worker.broker.messages import (
    ATTEMPTS,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    Delivery,
    Outgoing,
    safe_copy,
)
from worker.broker.publisher import PublishFailed
from worker.settings import VERSION, Settings
from worker.store import StoreConflict, StoreUnavailable

MAX_DETAIL = 1024
MAX_TRACEBACK = 4096

Kind = Literal["invalid", "transient", "bug"]


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one delivery, and what to publish instead of acknowledging it bare:
    a delayed retry (reason: the failure's kind) or a dead letter (reason: why it is dead)."""

    outcome: Literal["message.retry_scheduled", "message.dead_lettered"]
    kind: Kind
    reason: str
    detail: str
    outgoing: Outgoing


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

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._host = settings.host

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
        )
        return Failure("message.retry_scheduled", kind, kind, f"{detail} (retry in {delay:g}s)", retry)

    def dead_letter(
        self,
        delivery: Delivery,
        reason: str,
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
            "x-error-reason": reason,
            "x-error-detail": detail[:MAX_DETAIL],
            ORIGINAL_EXCHANGE: exchange,
            ORIGINAL_ROUTING_KEY: routing_key,
            "x-failed-at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            ATTEMPTS: attempts,
            "x-worker-version": VERSION,
            "x-worker-host": self._host,
        }
        if trace is not None:
            headers["x-error-traceback"] = trace[-MAX_TRACEBACK:]
        outgoing = safe_copy(delivery, "", self._settings.dead_letter_queue, headers)
        return Failure("message.dead_lettered", kind, reason, detail, outgoing)
