"""One connected run of the worker: consume in batches, commit, publish, acknowledge.

Work overlaps in a pipeline, keeping commit-before-publish and acknowledge-after-confirm for
every batch: while the store thread decides and commits batch N (its transaction), the main
thread collects and parses batch N+1; while the broker confirms N, N+1 is committed. N is
acknowledged (and its log lines written) once its confirms are in, just before N+1's publishes
go out. The store is only ever used by the store thread, one call at a time, in order.

When the store goes away the session stops consuming, keeps the deliveries in hand
unacknowledged, waits for the store with backoff, and then handles them again: an outage
costs no message a retry attempt.
"""

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

from worker import logs
from worker.broker.messages import Delivery
from worker.broker.publisher import ConfirmingPublisher
from worker.broker.topology import declare, topology
from worker.broker.wire import Connection, DeliveryReader
from worker.logs import Logger
from worker.redaction import masked
from worker.service.health import Health
from worker.service.housekeeping import Housekeeping
from worker.service.metrics import Metrics
from worker.service.outcomes import WARNINGS
from worker.service.processing import BatchProcessor, Parsed, Result
from worker.service.store_line import StoreLine
from worker.settings import Settings
from worker.store import OutboxRow, StoreUnavailable


class StoppedDuringOutage(Exception):
    """Asked to stop while waiting for the store: nothing in hand can be committed."""


@dataclass(frozen=True, slots=True)
class _Deciding:
    """A parsed chunk whose transaction runs on the store thread."""

    future: "Future[list[Result]]"
    parsed: Parsed
    started: float


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A committed batch whose publishes await their confirms."""

    last_delivery: int
    last_publish: int
    results: list[Result]
    outbox_seqs: list[int]


class Session:
    """Lives as long as its two connections: one consuming, one publishing with confirms."""

    def __init__(
        self,
        settings: Settings,
        processor: BatchProcessor,
        log: Logger,
        consuming: Connection,
        publishing: Connection,
        reader: DeliveryReader,
        *,
        metrics: Metrics,
        health: Health,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._health = health
        self._processor = processor
        self._outbox = processor.outbox
        self._log = log
        self._consuming = consuming
        self._publishing = publishing
        self._arrived = reader.arrived
        self._in_flight: _InFlight | None = None
        self._deciding: _Deciding | None = None
        self._store = StoreLine(
            processor.store,
            log=log,
            metrics=metrics,
            health=health,
            max_delay=settings.reconnect_max_delay,
            pause=self._pause,
            resume=self._consume,
            idle=self._wait,
        )
        self._stop = threading.Event()
        self._channel = consuming.channel()
        declare(self._channel, topology(settings))
        self._channel.basic_qos(0, settings.prefetch, False)
        self._consumer_tag: str | None = None
        self._housekeeper = Housekeeping(
            settings, processor, self._store, log=log, metrics=metrics, republish=self._republish
        )
        self._publisher = ConfirmingPublisher(publishing, confirm_timeout=settings.confirm_timeout, log=log)

    def run(self, stop: threading.Event) -> None:
        """Publish what is left over, then consume until `stop`; stop gracefully."""
        self._stop = stop
        self._republish("outbox.republished", self._store.call(self._outbox.leftovers))
        self._consume()
        self._log.info("worker.consuming", queue=self._settings.queue, broker=masked(self._settings.amqp_url))
        while not stop.is_set():
            batch = self._collect(first_wait=0.0 if self._in_flight or self._deciding else 1.0)
            if batch:
                self._handle(batch)
            else:
                self._finish()
            if not batch or self._housekeeper.due():
                self._finish_deciding()  # under load, a short pause of the pipeline every few seconds
                self._housekeeper.run(nothing_in_flight=self._in_flight is None)
            self._keep_alive()
        self._cancel()
        self._handle(self._collect(first_wait=0.05))
        self._finish()
        try:
            self._store.submit(self._processor.flush).result()
        except StoreUnavailable as exc:  # the rows stay; a sweep republishes them after the grace
            self._log.warning("outbox.not_flushed", error=str(exc))
        self._store.close()
        self._log.info("worker.stopped", queue=self._settings.queue)

    def close(self) -> None:
        """Drop both connections without a closing handshake (after the broker went away)."""
        self._health.consuming = False
        deciding = self._deciding
        self._store.close()  # a transaction running finishes (or fails) first
        if deciding is not None and deciding.future.done() and deciding.future.exception() is None:
            # Committed but never published: the next session republishes them at its start.
            self._outbox.sent(r.outbox_seq for r in deciding.future.result() if r.outbox_seq is not None)
        for connection in (self._consuming, self._publishing):
            with suppress(Exception):
                connection.collect()

    def _consume(self) -> None:
        self._consumer_tag = self._channel.basic_consume(self._settings.queue, callback=_read_by_the_reader)
        self._health.consuming = True

    def _cancel(self) -> None:
        self._health.consuming = False
        if self._consumer_tag is not None:
            self._channel.basic_cancel(self._consumer_tag)
            self._consumer_tag = None

    def _pause(self) -> None:
        """The store is away: settle what is committed, and take no new deliveries."""
        self._settle()
        self._cancel()

    def _collect(self, first_wait: float) -> list[Delivery]:
        """Wait up to `first_wait` for one delivery, then take what has arrived (or arrives
        within BATCH_IDLE_MS), up to BATCH_SIZE and at most BATCH_MAX_WAIT_MS."""
        settings, arrived, consuming = self._settings, self._arrived, self._consuming
        consuming.drain_buffered()
        if not arrived:
            try:
                consuming.drain_events(timeout=first_wait)
            except TimeoutError:
                return []
        lull = settings.batch_idle_ms / 1000
        deadline = time.monotonic() + settings.batch_max_wait_ms / 1000
        while len(arrived) < settings.batch_size and time.monotonic() < deadline:
            consuming.drain_buffered()
            if len(arrived) >= settings.batch_size:
                break
            try:
                consuming.drain_events(timeout=lull)
            except TimeoutError:
                break
        batch = arrived[: settings.batch_size]
        del arrived[: settings.batch_size]
        return batch

    def _handle(self, batch: Sequence[Delivery]) -> None:
        """Parse each chunk while the chunk before is decided, then hand it to the store thread."""
        for chunk in _chunks(batch):
            if chunk[0].redelivered:
                self._finish()  # nothing of ours in flight while a suspect message runs
                started = time.perf_counter()
                results = self._store.call(partial(self._processor.process_redelivered, chunk[0]))
                self._metrics.delivered(1, time.perf_counter() - started)
                self._publish(chunk, results)
                continue
            parsed = self._processor.parse(chunk)
            self._finish_deciding()
            future = self._store.submit(partial(self._processor.decide, parsed))
            self._deciding = _Deciding(future, parsed, time.perf_counter())

    def _finish_deciding(self) -> None:
        """Take the deciding chunk's results (waiting out a store outage), settle the batch
        before it, and send the chunk's publishes."""
        deciding, self._deciding = self._deciding, None
        if deciding is None:
            return
        again = partial(self._processor.decide, deciding.parsed)
        results = self._store.result(deciding.future, again=again, keep_alive=self._keep_alive)
        self._metrics.delivered(len(deciding.parsed.deliveries), time.perf_counter() - deciding.started)
        self._publish(deciding.parsed.deliveries, results)

    def _publish(self, chunk: Sequence[Delivery], results: list[Result]) -> None:
        """Settle the batch in flight, then send this one's publishes: it is in flight now."""
        self._settle()
        outgoing = [result.outgoing for result in results if result.outgoing is not None]
        seqs = [result.outbox_seq for result in results if result.outbox_seq is not None]
        self._outbox.sent(seqs)
        self._in_flight = _InFlight(chunk[-1].delivery_tag, self._publisher.send(outgoing), results, seqs)

    def _finish(self) -> None:
        """Everything in hand decided, published, confirmed and acknowledged."""
        self._finish_deciding()
        self._settle()

    def _settle(self) -> None:
        """Wait for the in-flight batch's confirms, acknowledge it, write its log lines."""
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return
        started = time.perf_counter()
        self._publisher.wait_for(batch.last_publish, while_waiting=self._keep_alive)
        confirm_seconds = time.perf_counter() - started
        self._outbox.confirmed(batch.outbox_seqs)
        self._channel.basic_ack(batch.last_delivery, multiple=True)
        self._metrics.settled(batch.results, confirm_seconds)
        logs.canonical(
            self._log,
            (("warning" if r.outcome in WARNINGS else "info", r.outcome, r.fields) for r in batch.results),
        )

    def _republish(self, event: str, rows: list[OutboxRow]) -> None:
        if not rows:
            return
        self._finish()
        messages = [self._processor.message(row) for row in rows]
        self._publisher.publish(messages, while_waiting=self._keep_alive)
        self._outbox.confirmed(row.seq for row in rows if row.seq is not None)
        self._log.info(event, count=len(rows))

    def _wait(self, seconds: float) -> None:
        """Keep the broker connections alive for `seconds` (deliveries arriving are kept)."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if self._stop.is_set():
                raise StoppedDuringOutage("stopped while the store was unavailable")
            with suppress(TimeoutError):
                self._consuming.drain_events(timeout=min(remaining, 1.0))
            self._keep_alive()

    def _keep_alive(self) -> None:
        self._health.tick()
        self._consuming.heartbeat_tick()
        self._publishing.heartbeat_tick()


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


def _read_by_the_reader(message: Any) -> None:  # pragma: no cover - never called
    raise AssertionError("deliveries are read by the DeliveryReader, not by py-amqp's consumer")
