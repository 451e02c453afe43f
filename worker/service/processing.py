"""One batch of deliveries: parse, decide and record in one transaction; say what to publish."""

import hashlib
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from events import (
    InvalidInput,
    NotificationRequested,
    NotificationRequestedData,
    notification_routing_key,
    parse,
)
from handlers import HANDLERS, HandlerMap
from worker.service.failures import Failure, FailurePolicy
from worker.service.messages import APP_ID, OUTPUT_CONTENT_TYPE, PERSISTENT, Delivery, Outgoing
from worker.settings import Settings
from worker.store import Batch, OutboxRow, SqlStore


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one delivery: the log line's name and fields, and what to publish."""

    delivery: Delivery
    outcome: str
    fields: dict[str, Any]
    outgoing: Outgoing | None = None


class _Careful(Exception):
    """A message failed on the fast path: roll back and redo the batch with savepoints."""


class BatchProcessor:
    """Deciding, not doing: nothing here talks to the broker."""

    def __init__(
        self,
        settings: Settings,
        store: SqlStore,
        handlers: HandlerMap = HANDLERS,
    ) -> None:
        self._settings = settings
        self._store = store
        self._handlers = handlers
        self._failures = FailurePolicy(settings, store.transient_errors)
        self._confirmed: list[str] = []

    def process(self, deliveries: Sequence[Delivery], *, settled_key: str | None = None) -> list[Result]:
        """Handle every delivery in one transaction; a failing one never spoils the others.

        The common case runs without per-message savepoints; the first message that raises
        rolls the batch back, and the batch is done again with a savepoint per message.
        """
        now = datetime.now(UTC)
        now_us = int(now.timestamp() * 1_000_000)
        try:
            try:
                results = self._transaction(deliveries, now, now_us, settled_key, careful=False)
            except _Careful:
                results = self._transaction(deliveries, now, now_us, settled_key, careful=True)
        except Exception as exc:  # the commit itself failed: every delivery goes round again
            return [self._failed(delivery, self._failures.handle(delivery, exc)) for delivery in deliveries]
        self._confirmed = []
        return results

    def _transaction(
        self,
        deliveries: Sequence[Delivery],
        now: datetime,
        now_us: int,
        settled_key: str | None,
        *,
        careful: bool,
    ) -> list[Result]:
        with self._store.batch() as batch:
            batch.forget_sent(self._confirmed)
            if settled_key is not None:
                batch.forget_attempts(settled_key)
            return [self._one(delivery, batch, now, now_us, careful) for delivery in deliveries]

    def process_redelivered(self, delivery: Delivery) -> list[Result]:
        """A delivery that was in hand when a worker died: handle it alone, counting each try
        in the store first, so the one message a worker keeps dying on is dead-lettered."""
        key = hashlib.sha256(delivery.body).hexdigest()
        with self._store.batch() as batch:
            batch.forget_sent(self._confirmed)
            crashes = batch.note_attempt(key) - 1
        self._confirmed = []
        if crashes < self._settings.max_crashes:
            return self.process([delivery], settled_key=key)
        detail = f"a worker died {crashes} times while handling this message"
        failure = self._failures.dead_letter(delivery, "retries_exhausted", detail, crashes)
        self._store.forget_attempts(key)
        return [self._failed(delivery, failure)]

    def confirmed(self, notification_ids: Sequence[str]) -> None:
        """The broker confirmed these: drop them from the outbox with the next transaction."""
        self._confirmed.extend(notification_ids)

    def flush(self) -> None:
        """Drop confirmed rows now (at shutdown), so a restart republishes nothing."""
        self._store.forget_sent(self._confirmed)
        self._confirmed = []

    def pending(self) -> list[Outgoing]:
        """Notifications an earlier run committed but never saw confirmed."""
        return [self._notification(row) for row in self._store.pending(limit=100_000)]

    def _one(self, delivery: Delivery, batch: Batch, now: datetime, now_us: int, careful: bool) -> Result:
        try:
            event = parse(delivery.body, delivery.content_type)
        except InvalidInput as exc:
            return self._failed(delivery, self._failures.handle(delivery, exc))
        fields: dict[str, Any] = {"event_id": event.id, "type": event.type, "client_id": event.data.client_id}
        try:
            with batch.savepoint() if careful else nullcontext():
                if not batch.record_event(event.id, now_us):
                    return Result(delivery, "message.duplicate_event", fields)
                decision = self._handlers[type(event)](event, projection=batch)
                if decision.notification is None:
                    return Result(delivery, decision.outcome, fields)
                row = self._outbox_row(decision.notification, now)
                batch.enqueue(row, now_us)
        except Exception as exc:
            if not careful:
                raise _Careful from exc
            failure = self._failures.handle(delivery, exc)
            return Result(
                delivery,
                failure.outcome,
                {**fields, "reason": failure.reason, "detail": failure.detail},
                failure.outgoing,
            )
        fields.update(notification_id=row.notification_id, audience=decision.notification.audience)
        return Result(delivery, decision.outcome, fields, self._notification(row))

    def _failed(self, delivery: Delivery, failure: Failure) -> Result:
        fields = {"reason": failure.reason, "detail": failure.detail, "routing_key": delivery.routing_key}
        return Result(delivery, failure.outcome, fields, failure.outgoing)

    def _outbox_row(self, data: NotificationRequestedData, now: datetime) -> OutboxRow:
        envelope = NotificationRequested(
            specversion="1.0",
            id=data.notification_id,
            source=self._settings.source,
            type="NotificationRequested",
            time=now,
            subject=data.client_id,
            data=data,
        )
        return OutboxRow(
            notification_id=data.notification_id,
            correlation_id=data.causation_id,
            routing_key=notification_routing_key(data.audience),
            body=envelope.model_dump_json().encode(),
        )

    def _notification(self, row: OutboxRow) -> Outgoing:
        return Outgoing(
            self._settings.notifications_exchange,
            row.routing_key,
            row.body,
            {
                "content_type": OUTPUT_CONTENT_TYPE,
                "delivery_mode": PERSISTENT,
                "message_id": row.notification_id,
                "correlation_id": row.correlation_id,
                "type": "NotificationRequested",
                "app_id": APP_ID,
            },
        )
