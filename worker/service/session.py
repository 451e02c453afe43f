"""One connected run of the worker: consume in batches, commit, publish, acknowledge.

Batches overlap by one: batch N+1 is committed while the broker confirms batch N, and N is
acknowledged (and its log lines written) once its confirms are in, while N+1's COMMIT waits
for the disk, before N+1's publishes go out. Commit-before-publish and
acknowledge-after-confirm hold for every batch.

When the store goes away the session stops consuming, keeps the deliveries in hand
unacknowledged, waits for the store with backoff, and then handles them again: an outage
costs no message a retry attempt.

When the broker stops delivering to the session's consumer (it cancelled it, its queue was
deleted, or `consumer_watch` finds it delivers nothing while messages wait), the session is
not ready at once, handles and settles what it holds (a deleted queue took those messages
with it: this copy is the only one left), and ends with ConsumerLost; the runtime connects,
declares and subscribes again.
"""

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from worker import logs
from worker.dead_letters.drain import NEXT_WAIT, PUMP_FOR
from worker.logs import Logger
from worker.messaging import ConsumerLost, Delivery, Outgoing, Unencodable, bare_copy
from worker.service.consumer_watch import ConsumerWatch
from worker.service.health import Health
from worker.service.housekeeping import Housekeeping
from worker.service.metrics import Metrics
from worker.service.outbox import Outbox
from worker.service.outcomes import WARNINGS
from worker.service.ports import Deliveries, LetterDrain, Publisher
from worker.service.processing import Processor, Result
from worker.service.store_line import StoreLine
from worker.store import OutboxRow, SqlStore, StoreUnavailable, WhileCommitting

T = TypeVar("T")


class StoppedDuringOutage(Exception):
    """Asked to stop while waiting for the store: nothing in hand can be committed."""


@dataclass(frozen=True, slots=True)
class _InFlight:
    """A committed batch whose publishes await their confirms."""

    last_delivery: int
    last_publish: int
    results: list[Result]
    outbox_seqs: list[int]


@dataclass(frozen=True, slots=True)
class Links:
    """The session's three broker links (`worker.service.ports`), one connection each."""

    deliveries: Deliveries
    publisher: Publisher
    letters: LetterDrain


@dataclass(frozen=True, slots=True)
class Services:
    """What outlives a session: built once by the composition root, used by every session."""

    processor: Processor
    outbox: Outbox
    store: SqlStore
    store_line: StoreLine
    housekeeping: Housekeeping
    metrics: Metrics
    health: Health
    log: Logger


class WorkerSession:
    """Lives as long as its links: consuming, publishing with confirms, draining dead letters."""

    def __init__(self, links: Links, services: Services, *, queue: str, broker: str) -> None:
        self._deliveries, self._publisher, self._drain = links.deliveries, links.publisher, links.letters
        self._processor, self._outbox, self._store = services.processor, services.outbox, services.store
        self._line, self._housekeeper = services.store_line, services.housekeeping
        self._metrics, self._health, self._log = services.metrics, services.health, services.log
        self._queue, self._broker = queue, broker  # for the log: the broker's URL is masked
        self._in_flight: _InFlight | None = None
        self._stop = threading.Event()
        self._watch = ConsumerWatch()

    def run(self, stop: threading.Event) -> None:
        """Publish what is left over, then consume until `stop`; stop gracefully."""
        self._stop = stop
        self._republish("outbox.republished", self._stored(self._outbox.leftovers))
        self._consume()
        self._drain_letters()
        self._log.info("worker.consuming", queue=self._queue, broker=self._broker)
        try:
            self._work(stop)
        except ConsumerLost as lost:
            self._settle_after(lost)
            raise
        self._cancel()
        self._handle(self._deliveries.collect(first_wait=0.05))
        self._acknowledge_in_flight()
        self._drain_letters()
        try:
            self._processor.flush()
        except StoreUnavailable as exc:  # the rows stay; a sweep republishes them after the grace
            self._log.warning("outbox.not_flushed", error=str(exc))
        self._log.info("worker.stopped", queue=self._queue)

    def _work(self, stop: threading.Event) -> None:
        while not stop.is_set():
            batch = self._deliveries.collect(first_wait=0.0 if self._in_flight else 1.0)
            if self._deliveries.lost is not None and self._health.consuming:
                self._tell_lost(self._deliveries.lost)  # not ready from this moment
            if batch:
                self._watch.arrived()
                self._handle(batch)
            else:
                self._acknowledge_in_flight()
                if self._watch.due():
                    self._watch_consumer()
            if not batch or self._housekeeper.due():  # under load too, every few seconds
                self._housekeeping()
            if self._drain.due():
                self._drain_letters()
            self._keep_alive()

    def _watch_consumer(self) -> None:
        """ConsumerLost if the broker no longer delivers to the consumer (`consumer_watch`)."""
        why = self._watch.lost(self._deliveries.state())
        if why is not None:
            raise ConsumerLost(f"{why} ({self._queue})")

    def _tell_lost(self, why: str) -> None:
        self._health.lost_consumer(why)
        self._log.warning("worker.consumer_lost", queue=self._queue, reason=why)

    def _settle_after(self, lost: ConsumerLost) -> None:
        """Not ready at once (if not already); then handle and settle every delivery and letter
        still in hand."""
        if self._health.consuming:
            self._tell_lost(str(lost))
        with suppress(ConsumerLost):
            while batch := self._deliveries.collect(first_wait=0.0):
                self._handle(batch)
        self._acknowledge_in_flight()
        with suppress(ConsumerLost):
            self._drain_letters()

    def close(self) -> None:
        """Drop the links without a closing handshake (after the broker went away)."""
        self._health.subscribed(False)
        for link in (self._deliveries, self._publisher, self._drain):
            with suppress(Exception):
                link.close()

    def _stored(self, call: Callable[[], T]) -> T:
        """`call()` on the store; while the store is away, take no deliveries and wait."""
        try:
            return self._line.call(call)
        except StoreUnavailable as error:
            lost_at = self._line.lost(error)
        self._pause()  # those in hand stay unacknowledged, and are handled once the store is back
        value = self._line.recover(call, lost_at, sleep=self._wait)
        self._consume()
        return value

    def _consume(self) -> None:
        self._deliveries.consume()
        self._drain.resume()
        self._watch.restart()
        self._health.subscribed(True)

    def _cancel(self) -> None:
        self._health.subscribed(False)
        self._drain.pause()
        self._deliveries.cancel()

    def _pause(self) -> None:
        """The store is away: settle what is committed, and take no new deliveries (nor
        dead letters: they wait in their queue)."""
        self._acknowledge_in_flight()
        self._cancel()

    def _housekeeping(self) -> None:
        for chore in self._housekeeper.chores(nothing_in_flight=self._in_flight is None):
            self._republish("outbox.orphans_republished", self._stored(chore))

    def _drain_letters(self) -> None:
        """Record the dead letters that have arrived, then acknowledge them; while more keep
        coming (a backlog), go on for up to PUMP_FOR seconds."""
        until = time.monotonic() + PUMP_FOR
        letters = self._drain.take()
        while letters:
            fresh = self._stored(partial(self._drain.record, letters))
            self._drain.acknowledge(letters, fresh)
            if time.monotonic() >= until:
                return
            letters = self._drain.take(wait=NEXT_WAIT)

    def _handle(self, batch: Sequence[Delivery]) -> None:
        """Commit each chunk, settle the batch before it, then send the chunk's publishes."""
        for chunk in _chunks(batch):
            started = time.perf_counter()
            settling = _WhileCommitting(self._while_committing)
            if chunk[0].redelivered:
                self._acknowledge_in_flight()  # nothing of ours in flight while a suspect message runs
                results = self._stored(partial(self._processor.process_redelivered, chunk[0]))
            else:  # the batch before is settled while this one's COMMIT waits for the disk
                results = self._stored(partial(self._processor.process, chunk, while_committing=settling))
            self._metrics.delivered(len(chunk), time.perf_counter() - started)
            publishing = [result for result in results if result.outgoing is not None]
            seqs = [result.outbox_seq for result in results if result.outbox_seq is not None]
            self._outbox.sent(seqs)  # committed: republished at the next session if this one ends now
            settling.done()
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
        self._stored(partial(self._store.set_aside, seq, reason))
        self._outbox.set_aside([seq])
        self._metrics.outbox_set_aside.inc()
        self._log.error("outbox.set_aside", seq=seq, event_id=event_id, reason=reason)

    def _while_committing(self, committing: Callable[[], bool]) -> None:
        """While a batch's COMMIT waits for the disk: settle the batch before it, then read
        what the broker sends meanwhile (the next batch, once that one is acknowledged)."""
        self._acknowledge_in_flight()
        self._deliveries.read_ahead(committing)

    def _acknowledge_in_flight(self) -> None:
        """Wait for the in-flight batch's confirms, acknowledge it, write its log lines."""
        batch, self._in_flight = self._in_flight, None
        if batch is None:
            return
        started = time.perf_counter()
        self._publisher.wait_for(batch.last_publish, while_waiting=self._keep_alive)
        confirm_seconds = time.perf_counter() - started
        self._outbox.confirmed(batch.outbox_seqs)
        self._deliveries.acknowledge(batch.last_delivery)
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
            self._deliveries.idle(min(remaining, 1.0))
            self._keep_alive()

    def _keep_alive(self) -> None:
        """Tell /healthz the loop is alive, and keep every link's heartbeats going: what the
        broker sent on the publishing connection is read here, since between batches nothing
        else reads it."""
        self._health.tick()
        self._deliveries.keep_alive()
        self._publisher.keep_alive()
        self._drain.keep_alive()


class _WhileCommitting:
    """Work to do while a batch's COMMIT waits (`BatchProcessor.process`): done once however
    often the batch is tried; what it raised kept, and raised by `done()`, once the batch is
    committed, so that it is never taken for the transaction's failure."""

    def __init__(self, work: WhileCommitting) -> None:
        self._work: WhileCommitting | None = work
        self._raised: BaseException | None = None

    def __call__(self, committing: Callable[[], bool]) -> None:
        work, self._work = self._work, None
        if work is None:
            return
        try:
            work(committing)
        except BaseException as exc:  # a broker error, a stop: the session's, raised by done()
            self._raised = exc

    def done(self) -> None:
        if self._raised is not None:
            raise self._raised


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
