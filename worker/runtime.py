"""The worker process: consume in batches, commit, publish with confirms, then acknowledge."""

import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import kombu
from amqp.exceptions import ConnectionError as AmqpConnectionError
from amqp.exceptions import RecoverableConnectionError

from worker import logs
from worker.failures import PublishFailed
from worker.messages import Delivery, Outgoing
from worker.processing import BatchProcessor, Result
from worker.publisher import ConfirmingPublisher
from worker.settings import Settings, masked
from worker.topology import declare, topology

_WARNINGS = frozenset({"message.retry_scheduled", "message.dead_lettered"})


class Worker:
    """Runs until `stop` is set; reconnects with backoff whenever the broker goes away."""

    def __init__(self, settings: Settings, processor: BatchProcessor, log: Any) -> None:
        self._settings = settings
        self._processor = processor
        self._log = log
        self._deliveries: list[Delivery] = []

    def run(self, stop: threading.Event) -> None:
        delay = 0.5

        def delay_reset() -> None:
            nonlocal delay
            delay = 0.5

        while not stop.is_set():
            try:
                self._serve(stop, delay_reset)
                return
            except (OSError, PublishFailed, AmqpConnectionError, RecoverableConnectionError) as exc:
                self._log.warning(
                    "broker.connection_lost",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=round(delay, 2),
                    broker=masked(self._settings.amqp_url),
                    exc_info=self._settings.log_level == "debug",
                )
                stop.wait(delay)
                delay = min(delay * 2, self._settings.reconnect_max_delay)

    def _connect(self) -> kombu.Connection:
        connection = kombu.Connection(
            self._settings.amqp_url,
            heartbeat=self._settings.heartbeat,
            connect_timeout=5,
            # py-amqp sets TCP_USER_TIMEOUT to 1 s, which kills a connection the broker has
            # blocked (memory or disk alarm) after one second; heartbeats find dead peers instead.
            transport_options={"socket_settings": {socket.TCP_USER_TIMEOUT: 0}},
        )
        connection.connect()
        return connection

    def _serve(self, stop: threading.Event, delay_reset: Any) -> None:
        settings = self._settings
        with self._connect() as consuming, self._connect() as publishing:
            channel = consuming.channel()
            channel.auto_decode = False
            declare(channel, topology(settings))
            publisher = ConfirmingPublisher(
                publishing.connection, confirm_timeout=settings.confirm_timeout, log=self._log
            )
            publishing.connection.on_blocked = publisher.on_blocked
            publishing.connection.on_unblocked = publisher.on_unblocked
            self._publish_leftovers(publisher)
            self._deliveries.clear()
            consumer = kombu.Consumer(
                channel,
                queues=[kombu.Queue(settings.queue, no_declare=True)],
                on_message=self._receive,
                no_ack=False,
                prefetch_count=settings.prefetch,
            )
            consumer.consume()
            self._log.info("worker.consuming", queue=settings.queue, broker=masked(settings.amqp_url))
            delay_reset()

            def keep_alive() -> None:
                consuming.heartbeat_check()
                publishing.heartbeat_check()

            while not stop.is_set():
                batch = self._collect(consuming)
                if batch:
                    self._complete(batch, channel, publisher, keep_alive)
                keep_alive()
            consumer.cancel()
            self._complete(self._collect(consuming, first_wait=0.05), channel, publisher, keep_alive)
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

    def _collect(self, connection: kombu.Connection, first_wait: float = 1.0) -> list[Delivery]:
        """Wait for one delivery, then take what follows until a short lull or a full batch."""
        settings = self._settings
        if not self._deliveries:
            try:
                connection.drain_events(timeout=first_wait)
            except TimeoutError:
                return []
        lull = settings.batch_idle_ms / 1000
        deadline = time.monotonic() + settings.batch_max_wait_ms / 1000
        while len(self._deliveries) < settings.batch_size and time.monotonic() < deadline:
            try:
                connection.drain_events(timeout=lull)
            except TimeoutError:
                break
        batch, self._deliveries = self._deliveries, []
        return batch

    def _complete(
        self, batch: Sequence[Delivery], channel: Any, publisher: ConfirmingPublisher, keep_alive: Any
    ) -> None:
        """Per chunk: commit, publish every consequence with confirms, then one multiple-ack."""
        for chunk in _chunks(batch):
            if chunk[0].redelivered:
                results = self._processor.process_redelivered(chunk[0])
            else:
                results = self._processor.process(chunk)
            outgoing = [result.outgoing for result in results if result.outgoing is not None]
            publisher.publish(outgoing, while_waiting=keep_alive)
            self._processor.confirmed(_notification_ids(outgoing, self._settings.notifications_exchange))
            channel.basic_ack(chunk[-1].delivery_tag, multiple=True)
            self._report(results)

    def _publish_leftovers(self, publisher: ConfirmingPublisher) -> None:
        leftovers = self._processor.pending()
        if leftovers:
            publisher.publish(leftovers)
            self._processor.confirmed(_notification_ids(leftovers, self._settings.notifications_exchange))
            self._log.info("outbox.republished", count=len(leftovers))

    def _report(self, results: Sequence[Result]) -> None:
        """One canonical line per message, written together once the batch is acknowledged."""
        log = self._log
        with logs.held():
            for result in results:
                if result.outcome in _WARNINGS:
                    log.warning(result.outcome, **result.fields)
                else:
                    log.info(result.outcome, **result.fields)


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
