"""The composition root: the only place that builds concrete objects from the settings.

It builds, and does nothing else: running the worker (signals, the shutdown watchdog, exit
statuses) is `worker.running`'s. Tracing is chosen here too: when OTEL_* variables turn it on,
`worker.tracing.tracing_for` gives the wrappers of the batch processor and of the store's
statements, and they are built in; nothing is patched afterwards."""

import os
import socket

from handlers import HANDLERS, HandlerMap
from worker import logs
from worker.broker.endpoints import Broker, from_settings
from worker.broker.links import AmqpDeliveries, AmqpLetters, AmqpPublishing, losses_translated
from worker.broker.publisher import ConfirmingPublisher, encoded_size
from worker.broker.topology import BrokerVersion, topology
from worker.broker.wire import DeliveryReader
from worker.dead_letters.brakes import Brakes
from worker.dead_letters.drain import PREFETCH as LETTERS_IN_HAND
from worker.dead_letters.drain import PUMP_EVERY, DeadLetterDrain, Records
from worker.dead_letters.queue import ReplayPublisher
from worker.dead_letters.records import DeadLetterRecords
from worker.dead_letters.routing import Routes
from worker.dead_letters.scheduled_runs import ScheduledReplays
from worker.failures import metrics_port_taken
from worker.logs import Logger
from worker.redaction import masked
from worker.service.health import Health, serve
from worker.service.housekeeping import Housekeeping
from worker.service.metrics import Metrics
from worker.service.notifications import NotificationWriter, Writer
from worker.service.outbox import Outbox
from worker.service.ports import BrokerLinks, Linked
from worker.service.processing import BatchProcessor, Processor
from worker.service.retention import Retention
from worker.service.runtime import OpenSession, Worker
from worker.service.session import Links, Services, WorkerSession
from worker.service.store_line import StoreLine
from worker.settings import ConfigurationError, Settings
from worker.store import RunnerFor, SqlStore, StoreError, StoreUnusable, direct
from worker.store.configured import open_configured_store
from worker.tracing import tracing_for


def build_worker(
    settings: Settings,
    *,
    handlers: HandlerMap = HANDLERS,
    store: SqlStore | None = None,
    records: Records = DeadLetterRecords,
    links: BrokerLinks | None = None,
) -> Worker:
    """The worker with its store, handlers, dead-letter records and broker links; tests pass
    their own (as cosmicpython's `bootstrap` does: `tests/memory_broker.py` is a `links`),
    production takes the built-in ones, the configured store and the configured broker.
    Everything a session uses is built here, once; each session's links at every (re)connect
    by `links.connect`, and the session over them by `session_opener`, here too."""
    log = logs.get_logger("renewals.worker")
    store = store if store is not None else worker_store(settings)
    log.info("store.opened", store=store.description, schema_version=store.schema_version())
    metrics = Metrics(store.kind, enabled=settings.metrics_port is not None)
    health = Health(stale_after=settings.health_stale_after)
    metrics.watch(health)
    if settings.metrics_port is not None:
        _serve_metrics(settings, settings.metrics_port, health, metrics, log)
    services = build_services(settings, store, handlers, metrics=metrics, health=health, log=log)
    links = links if links is not None else AmqpLinks(settings, from_settings(settings), log)
    opener = session_opener(settings, services, records(store), links)
    return Worker(settings, links, opener, log, metrics=metrics, health=health)


def build_services(
    settings: Settings,
    store: SqlStore,
    handlers: HandlerMap,
    *,
    metrics: Metrics,
    health: Health,
    log: Logger,
) -> Services:
    """What every session of one worker uses: the processor and the outbox over `store`, the
    store line, housekeeping and the worker's metrics, readiness and log."""
    outbox = Outbox(store, grace_s=settings.outbox_grace, sweep_every_s=settings.outbox_sweep_interval)
    conflict = metrics.store_errors.labels("conflict").inc

    def batches(writer: Writer) -> BatchProcessor:
        return BatchProcessor(
            settings,
            store,
            handlers,
            outbox=outbox,
            encoded_size=encoded_size,
            writer=writer,
            on_conflict=conflict,
        )

    writer = NotificationWriter(settings.source, settings.notifications_exchange)
    tracing = tracing_for(settings)  # None unless OTEL_* variables turn tracing on
    processor: Processor = batches(writer) if tracing is None else tracing.processor(batches, writer)
    retention = Retention(store, settings, letters=DeadLetterRecords(store))
    return Services(
        processor=processor,
        outbox=outbox,
        store=store,
        store_line=StoreLine(
            store, log=log, metrics=metrics, health=health, max_delay=settings.reconnect_max_delay
        ),
        housekeeping=Housekeeping(
            store,
            outbox,
            retention,
            flush=processor.flush,
            log=log,
            metrics=metrics,
            replays=scheduled_replays(settings, store, log).look,
        ),
        metrics=metrics,
        health=health,
        log=log,
    )


def scheduled_replays(settings: Settings, store: SqlStore, log: Logger) -> ScheduledReplays:
    """The runner of due scheduled replays: it looks in the worker's store, and runs each over
    its own store and broker connections (worker/dead_letters/schedule.py)."""
    return ScheduledReplays(
        DeadLetterRecords(store),
        open_store=lambda: open_configured_store(settings),
        publisher=lambda: ReplayPublisher(from_settings(settings, heartbeat=0), log=log),
        routes=lambda to_original: Routes.of(settings, to_original=to_original),
        runner=f"{socket.gethostname()}:{os.getpid()}",
        log=log,
        brakes=Brakes.of(settings),
    )


class AmqpLinks:
    """The broker over py-amqp: a session's three connections on one node (the first, from the
    given one on, that accepts), the topology declared, the links over them."""

    def __init__(self, settings: Settings, broker: Broker, log: Logger) -> None:
        self._settings = settings
        self._broker = broker
        self._log = log
        self.endpoints = broker.endpoints
        self.name = masked(settings.amqp_url)

    def __str__(self) -> str:
        return str(self._broker)

    def connect(self, first: int) -> Linked:
        with losses_translated():
            return self._connected(first)

    def _connected(self, first: int) -> Linked:
        settings, broker = self._settings, self._broker
        reader = DeliveryReader()
        consuming, node = broker.connect(first=first, frame_handler=reader.frame_handler)
        opened = [consuming]
        try:
            publishing, _ = broker.connect(first=node)
            opened.append(publishing)
            letters = DeliveryReader()
            draining, _ = broker.connect(first=node, frame_handler=letters.frame_handler)
            opened.append(draining)
            deliveries = AmqpDeliveries(
                consuming,
                reader,
                topology(settings, BrokerVersion.of(consuming)),
                queue=settings.queue,
                prefetch=settings.prefetch,
                batch_size=settings.batch_size,
                lull=settings.batch_idle_ms / 1000,
                max_wait=settings.batch_max_wait_ms / 1000,
            )
            publisher = AmqpPublishing(
                ConfirmingPublisher(publishing, confirm_timeout=settings.confirm_timeout, log=self._log)
            )
            letter_queue = AmqpLetters(
                draining,
                letters,
                queue=settings.dead_letter_queue,
                prefetch=LETTERS_IN_HAND,
                read_every=PUMP_EVERY,
            )
        except BaseException:
            for connection in opened:
                connection.collect()
            raise
        return Linked(deliveries, publisher, letter_queue, node)


def session_opener(
    settings: Settings, services: Services, records: DeadLetterRecords, links: BrokerLinks
) -> OpenSession:
    """Opens a session: its links connected by `links`, the dead-letter drain over the third."""

    def open_session(first: int) -> tuple[WorkerSession, int]:
        linked = links.connect(first)
        drain = DeadLetterDrain(linked.letters, records, name=settings.dead_letter_queue, log=services.log)
        session_links = Links(deliveries=linked.deliveries, publisher=linked.publisher, letters=drain)
        return WorkerSession(session_links, services, queue=settings.queue, broker=links.name), linked.node

    return open_session


def _serve_metrics(settings: Settings, port: int, health: Health, metrics: Metrics, log: Logger) -> None:
    try:
        serve(health, metrics.registry, settings.metrics_host, port)
    except OSError as exc:
        raise ConfigurationError(
            metrics_port_taken(settings.metrics_port, settings.metrics_host, exc)
        ) from None
    log.info("metrics.serving", host=settings.metrics_host, port=settings.metrics_port)


def connect_store(settings: Settings, *, migrate: bool | None = None, runner: RunnerFor = direct) -> SqlStore:
    """The configured store, its schema migrated (or checked, with STORE_MIGRATE off).
    StoreUnusable if it answered with anything but a store error (a damaged SQLite file)."""
    store = open_configured_store(settings, runner=runner)
    try:
        if settings.store_migrate if migrate is None else migrate:
            before, after = store.migrate()
            if before != after:
                migrated = logs.get_logger("renewals.store")
                migrated.info("store.migrated", from_version=before, to_version=after)
        else:
            store.check_schema()
    except StoreError:
        store.close()
        raise
    except Exception as exc:
        store.close()
        raise StoreUnusable(f"{type(exc).__name__}: {exc}") from exc
    return store


def worker_store(settings: Settings) -> SqlStore:
    """The worker's own store (`connect_store`'s), its statements in spans when tracing is on;
    the commands' and the console's stores are never traced."""
    tracing = tracing_for(settings)
    return connect_store(settings, runner=direct if tracing is None else tracing.statements)
