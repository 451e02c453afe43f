"""One connected run of the worker: consume in batches, commit, publish, acknowledge.

Batches overlap by one: batch N+1 is committed while the broker confirms batch N, and N is
acknowledged (and its log lines written) once its confirms are in, just before N+1's
publishes go out. Commit-before-publish and acknowledge-after-confirm hold for every batch.
"""

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import kombu

from worker import logs
from worker.redaction import masked
from worker.service.messages import Delivery, Outgoing
from worker.service.processing import BatchProcessor, Result
from worker.service.publisher import ConfirmingPublisher
from worker.settings import Settings
from worker.topology import declare, topology

_WARNINGS = frozenset({"message.retry_scheduled", "message.dead_lettered"})


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A committed batch whose publishes await their confirms."""

    last_delivery: int
    last_publish: int
    results: list[Result]
    notification_ids: list[str]


class Session:
    """Lives as long as its two connections: one consuming, one publishing with confirms."""

    def __init__(
        self,
        settings: Settings,
        processor: BatchProcessor,
        log: Any,
        consuming: kombu.Connection,
        publishing: kombu.Connection,
    ) -> None:
        self._settings = settings
        self._processor = processor
        self._log = log
        self._consuming = consuming
        self._publishing = publishing
        self._deliveries: list[Delivery] = []
        self._in_flight: _InFlight | None = None
        self._channel = consuming.channel()
        self._channel.auto_decode = False
        declare(self._channel, topology(settings))
        self._publisher = ConfirmingPublisher(
            publishing.connection, confirm_timeout=settings.confirm_timeout, log=log
        )
        publishing.connection.on_blocked = self._publisher.on_blocked
        publishing.connection.on_unblocked = self._publisher.on_unblocked

    def run(self, stop: threading.Event, on_consuming: Any) -> None:
        """Publish what a crash left behind, then consume until `stop`; stop gracefully."""
        settings = self._settings
        leftovers = self._processor.pending()
        if leftovers:
            self._publisher.publish(leftovers)
            self._processor.confirmed(_notification_ids(leftovers, settings.notifications_exchange))
            self._log.info("outbox.republished", count=len(leftovers))
        consumer = kombu.Consumer(
            self._channel,
            queues=[kombu.Queue(settings.queue, no_declare=True)],
            on_message=self._receive,
            no_ack=False,
            prefetch_count=settings.prefetch,
        )
        consumer.consume()
        self._log.info("worker.consuming", queue=settings.queue, broker=masked(settings.amqp_url))
        on_consuming()
        while not stop.is_set():
            batch = self._collect(first_wait=0.0 if self._in_flight else 1.0)
            if batch:
                self._handle(batch)
            else:
                self._settle()
            self._keep_alive()
        consumer.cancel()
        self._handle(self._collect(first_wait=0.05))
        self._settle()
        self._processor.flush()
        self._log.info("worker.stopped", queue=settings.queue)

    def _receive(self, message: Any) -> None:
        info = message.delivery_info
        body = message.body
        if isinstance(body, str):  # only if a client library decoded it; undo exactly
            body = body.encode(message.content_encoding or "utf-8")
        self._deliveries.append(
            Delivery(
                body,
                message.properties,
                info["exchange"],
                info["routing_key"],
                info["delivery_tag"],
                bool(info.get("redelivered")),
            )
        )

    def _collect(self, first_wait: float) -> list[Delivery]:
        """Wait up to `first_wait` for one delivery, then take what has arrived (or arrives
        within BATCH_IDLE_MS), up to BATCH_SIZE and at most BATCH_MAX_WAIT_MS."""
        settings = self._settings
        if not self._deliveries:
            try:
                self._consuming.drain_events(timeout=first_wait)
            except TimeoutError:
                return []
        lull = settings.batch_idle_ms / 1000
        deadline = time.monotonic() + settings.batch_max_wait_ms / 1000
        while len(self._deliveries) < settings.batch_size and time.monotonic() < deadline:
            try:
                self._consuming.drain_events(timeout=lull)
            except TimeoutError:
                break
        batch, self._deliveries = self._deliveries, []
        return batch

    def _handle(self, batch: Sequence[Delivery]) -> None:
        """Commit each chunk, settle the batch before it, then send the chunk's publishes."""
        for chunk in _chunks(batch):
            if chunk[0].redelivered:
                self._settle()  # nothing of ours in flight while a suspect message runs
                results = self._processor.process_redelivered(chunk[0])
            else:
                results = self._processor.process(chunk)
            self._settle()
            outgoing = [result.outgoing for result in results if result.outgoing is not None]
            self._in_flight = _InFlight(
                chunk[-1].delivery_tag,
                self._publisher.send(outgoing),
                results,
                _notification_ids(outgoing, self._settings.notifications_exchange),
            )

    def _settle(self) -> None:
        """Wait for the in-flight batch's confirms, acknowledge it, write its log lines."""
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return
        self._publisher.wait_for(batch.last_publish, while_waiting=self._keep_alive)
        self._processor.confirmed(batch.notification_ids)
        self._channel.basic_ack(batch.last_delivery, multiple=True)
        with logs.held():
            for result in batch.results:
                if result.outcome in _WARNINGS:
                    self._log.warning(result.outcome, **result.fields)
                else:
                    self._log.info(result.outcome, **result.fields)

    def _keep_alive(self) -> None:
        self._consuming.heartbeat_check()
        self._publishing.heartbeat_check()


def _chunks(batch: Sequence[Delivery]) -> list[Sequence[Delivery]]:
    """Runs of fresh deliveries together; each redelivered one alone (it may be what killed
    the last worker, and must not take its neighbours down with it again)."""
    chunks: list[Sequence[Delivery]] = []
    start = 0
    for index, delivery in enumerate(batch):
        if delivery.redelivered:
            if start < index:
                chunks.append(batch[start:index])
            chunks.append(batch[index : index + 1])
            start = index + 1
    if start < len(batch):
        chunks.append(batch[start:])
    return chunks


def _notification_ids(outgoing: Sequence[Outgoing], exchange: str) -> list[str]:
    return [m.message_id for m in outgoing if m.exchange == exchange and m.message_id is not None]
