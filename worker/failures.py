"""Errors are classified here and nowhere else: dead-letter now, or retry and then dead-letter."""

import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from events import InvalidInput
from worker.messages import (
    ATTEMPTS,
    ORIGINAL_EXCHANGE,
    ORIGINAL_ROUTING_KEY,
    Delivery,
    Outgoing,
    copy_with_headers,
)
from worker.settings import VERSION, Settings

MAX_DETAIL = 1024
MAX_TRACEBACK = 4096

Kind = Literal["invalid", "transient", "bug"]


class PublishFailed(Exception):
    """The broker did not confirm a publish (nack, return or timeout): transient."""


@dataclass(frozen=True, slots=True)
class Failure:
    """What went wrong with one delivery, and what to publish instead of acknowledging it bare."""

    outcome: str
    reason: str
    detail: str
    outgoing: Outgoing


def classify(exc: BaseException, transient: tuple[type[BaseException], ...]) -> Kind:
    if isinstance(exc, InvalidInput):
        return "invalid"
    if isinstance(exc, (*transient, PublishFailed, TimeoutError, ConnectionError)):
        return "transient"
    return "bug"


class FailurePolicy:
    """Turns an exception on a delivery into a dead letter or a delayed retry."""

    def __init__(self, settings: Settings, transient: tuple[type[BaseException], ...]) -> None:
        self._settings = settings
        self._transient = transient
        self._host = settings.host

    def handle(self, delivery: Delivery, exc: BaseException) -> Failure:
        kind = classify(exc, self._transient)
        attempts = delivery.attempts + 1
        if isinstance(exc, InvalidInput):
            return self.dead_letter(delivery, exc.reason, exc.detail, attempts)
        detail = f"{kind}: {type(exc).__name__}: {exc}"
        if attempts >= self._settings.max_attempts:
            trace = "".join(traceback.format_exception(exc, limit=8))
            return self.dead_letter(delivery, "retries_exhausted", detail, attempts, trace)
        queue, delay = self._settings.retry_queue(attempts)
        exchange, routing_key = delivery.origin
        retry = copy_with_headers(
            delivery,
            "",
            queue,
            **{ATTEMPTS: attempts, ORIGINAL_EXCHANGE: exchange, ORIGINAL_ROUTING_KEY: routing_key},
        )
        return Failure("message.retry_scheduled", kind, f"{detail} (retry in {delay:g}s)", retry)

    def dead_letter(
        self, delivery: Delivery, reason: str, detail: str, attempts: int, trace: str | None = None
    ) -> Failure:
        """The original body and properties, plus the headers docs/domain.md lists."""
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
        outgoing = copy_with_headers(delivery, "", self._settings.dead_letter_queue, **headers)
        return Failure("message.dead_lettered", reason, detail, outgoing)
