"""One connected run of the worker: consume in batches, commit, publish, acknowledge.

Batches overlap by one: batch N+1 is committed while the broker confirms batch N, and N is
acknowledged (and its log lines written) once its confirms are in, just before N+1's
publishes go out. Commit-before-publish and acknowledge-after-confirm hold for every batch.

When the store goes away the session stops consuming, keeps the deliveries in hand
unacknowledged, waits for the store with backoff, and then handles them again: an outage
costs no message a retry attempt.
"""

import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial

from worker import logs
from worker.broker.messages import Delivery, Outgoing, bare_copy
from worker.broker.publisher import ConfirmingPublisher, Unencodable
from worker.broker.topology import BrokerVersion, declare, topology
from worker.broker.wire import Connection, DeliveryReader, read_by_the_reader
from worker.logs import Logger
from worker.redaction import masked
from worker.service.dead_letters import NEXT_WAIT, PUMP_FOR, DeadLetterDrain
from worker.service.health import Health
from worker.service.housekeeping import Housekeeping
from worker.service.metrics import Metrics
from worker.service.outcomes import WARNINGS
from worker.service.processing import BatchProcessor, Result
from worker.service.store_line import StoreLine
from worker.settings import Settings
from worker.store import OutboxRow, StoreUnavailable


class StoppedDuringOutage(Exception):
    """Asked to stop while waiting for the store: nothing in hand can be committed."""


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
        drain: DeadLetterDrain,
    ) -> None:
        self._settings = settings
        self._drain = drain
        self._metrics = metrics
        self._health = health
        self._processor = processor
        self._outbox = processor.outbox
        self._log = log
        self._consuming = consuming
        self._publishing = publishing
        self._arrived = reader.arrived
        self._in_flight: _InFlight | None = None
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
        declare(self._channel, topology(settings, BrokerVersion.of(consuming)))
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
        self._drain_letters()
        self._log.info("worker.consuming", queue=self._settings.queue, broker=masked(self._settings.amqp_url))
        while not stop.is_set():
            batch = self._collect(first_wait=0.0 if self._in_flight else 1.0)
            if batch:
                self._handle(batch)
            else:
                self._acknowledge_in_flight()
            if not batch or self._housekeeper.due():  # under load too, every few seconds
                self._housekeeper.run(nothing_in_flight=self._in_flight is None)
            if self._drain.due():
                self._drain_letters()
            self._keep_alive()
        self._cancel()
        self._handle(self._collect(first_wait=0.05))
        self._acknowledge_in_flight()
        self._drain_letters()
        try:
            self._processor.flush()
        except StoreUnavailable as exc:  # the rows stay; a sweep republishes them after the grace
            self._log.warning("outbox.not_flushed", error=str(exc))
        self._log.info("worker.stopped", queue=self._settings.queue)

    def close(self) -> None:
        """Drop both connections without a closing handshake (after the broker went away)."""
        self._health.consuming = False
        for connection in (self._consuming, self._publishing, self._drain.connection):
            with suppress(Exception):
                connection.collect()

    def _consume(self) -> None:
        self._consumer_tag = self._channel.basic_consume(self._settings.queue, callback=read_by_the_reader)
        self._drain.resume()
        self._health.consuming = True

    def _cancel(self) -> None:
        self._health.consuming = False
        self._drain.pause()
        if self._consumer_tag is not None:
            self._channel.basic_cancel(self._consumer_tag)
            self._consumer_tag = None

    def _pause(self) -> None:
        """The store is away: settle what is committed, and take no new deliveries (nor
        dead letters: they wait in their queue)."""
        self._acknowledge_in_flight()
        self._cancel()

    def _drain_letters(self) -> None:
        """Record the dead letters that have arrived, then acknowledge them; while more keep
        coming (a backlog), go on for up to PUMP_FOR seconds."""
        until = time.monotonic() + PUMP_FOR
        letters = self._drain.take()
        while letters:
            fresh = self._store.call(partial(self._drain.record, letters))
            self._drain.acknowledge(letters, fresh)
            if time.monotonic() >= until:
                return
            letters = self._drain.take(wait=NEXT_WAIT)

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
        """Commit each chunk, settle the batch before it, then send the chunk's publishes."""
        for chunk in _chunks(batch):
            started = time.perf_counter()
            if chunk[0].redelivered:
                self._acknowledge_in_flight()  # nothing of ours in flight while a suspect message runs
                results = self._store.call(partial(self._processor.process_redelivered, chunk[0]))
            else:
                results = self._store.call(partial(self._processor.process, chunk))
            self._metrics.delivered(len(chunk), time.perf_counter() - started)
            publishing = [result for result in results if result.outgoing is not None]
            seqs = [result.outbox_seq for result in results if result.outbox_seq is not None]
            self._outbox.sent(seqs)  # committed: republished at the next session if this one ends now
            self._acknowledge_in_flight()
            sent = self._publisher.send([result.outgoing for result in publishing if result.outgoing])
            tag, aside = sent.tag, set[int]()
            if sent.unencodable:
                tag, aside = self._left_out(publishing, sent.unencodable, tag)
            kept = [seq for seq in seqs if seq not in aside]
            self._in_flight = _InFlight(chunk[-1].delivery_tag, tag, results, kept)

    def _left_out(
        self, publishing: list[Result], unencodable: dict[int, str], tag: int
    ) -> tuple[int, set[int]]:
        """What the publisher could not encode fails alone: a notification's outbox row is set
        aside in the store with the reason; a retry or dead-letter copy goes out bare (its body
        and the worker's headers). The new last tag, and the rows set aside."""
        aside: set[int] = set()
        bare: list[Outgoing] = []
        for index, reason in unencodable.items():
            result = publishing[index]
            if result.outbox_seq is not None:
                self._set_aside(result.outbox_seq, reason, result.fields.get("event_id"))
                aside.add(result.outbox_seq)
            elif result.outgoing is not None:
                self._log.error(
                    "message.copy_stripped", reason=reason, routing_key=result.outgoing.routing_key
                )
                bare.append(bare_copy(result.outgoing))
        if bare:
            sent = self._publisher.send(bare)
            if sent.unencodable:  # the worker's own names and headers: a configuration no broker takes
                raise Unencodable("; ".join(sent.unencodable.values()))
            tag = sent.tag
        return tag, aside

    def _set_aside(self, seq: int, reason: str, event_id: object) -> None:
        self._store.call(partial(self._processor.store.set_aside, seq, reason))
        self._outbox.set_aside([seq])
        self._metrics.outbox_set_aside.inc()
        self._log.error("outbox.set_aside", seq=seq, event_id=event_id, reason=reason)

    def _acknowledge_in_flight(self) -> None:
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
        self._acknowledge_in_flight()
        sent = self._publisher.send([self._processor.message(row) for row in rows])
        aside = {rows[index].seq for index in sent.unencodable}
        for index, reason in sent.unencodable.items():
            row = rows[index]
            if row.seq is not None:
                self._set_aside(row.seq, reason, row.correlation_id)
        self._publisher.wait_for(sent.tag, while_waiting=self._keep_alive)
        self._outbox.confirmed(row.seq for row in rows if row.seq is not None and row.seq not in aside)
        self._log.info(event, count=len(rows) - len(aside))

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
        """Tell /healthz the loop is alive, and keep both connections' heartbeats going: what
        the broker sent on the publishing connection is read here, since between batches
        nothing else reads it."""
        self._health.tick()
        self._consuming.keep_alive()
        self._publishing.keep_alive()
        self._drain.tick()


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
