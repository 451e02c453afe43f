"""The composition root: the only place that builds concrete objects from the settings."""

import os
import signal
import sys
import threading
from typing import Any

from handlers import HANDLERS, HandlerMap
from worker import logs
from worker.broker.endpoints import Broker, BrokerRefused, from_settings
from worker.broker.links import AmqpDeliveries, AmqpLetters
from worker.broker.publisher import ConfirmingPublisher
from worker.broker.topology import BrokerVersion, TopologyMismatch, topology
from worker.broker.wire import DeliveryReader
from worker.dead_letters.drain import PREFETCH as LETTERS_IN_HAND
from worker.dead_letters.drain import PUMP_EVERY, DeadLetterDrain, Records
from worker.dead_letters.records import DeadLetterRecords
from worker.exits import EX_CONFIG, EX_REFUSED, EX_SOFTWARE
from worker.failures import store_refusal
from worker.logs import Logger
from worker.redaction import masked
from worker.retrying import until_stopped
from worker.service.health import Health, serve
from worker.service.housekeeping import Housekeeping
from worker.service.metrics import Metrics
from worker.service.outbox import Outbox
from worker.service.retention import Retention
from worker.service.runtime import OpenSession, Worker
from worker.service.session import Links, Services, Session
from worker.service.store_line import StoreLine
from worker.settings import ConfigurationError, Settings
from worker.store import SchemaTooNew, SchemaTooOld, SqlStore, StoreRefused, StoreUnavailable
from worker.store.configured import open_configured_store
from worker.tracing import TracingMisconfigured, processor_for

CANNOT_WORK = (SchemaTooNew, SchemaTooOld, TopologyMismatch, ConfigurationError, TracingMisconfigured)
"""Stops with EX_CONFIG: the configuration must change first."""


def build_worker(
    settings: Settings,
    *,
    handlers: HandlerMap = HANDLERS,
    store: SqlStore | None = None,
    records: Records = DeadLetterRecords,
) -> Worker:
    """The worker with its store, handlers and dead-letter records; tests pass their own (as
    cosmicpython's `bootstrap` does), production takes the built-in ones and the configured
    store. Everything a session uses is built here, once; each session's broker links are
    built by `session_opener`, here too."""
    log = logs.get_logger("renewals.worker")
    store = store if store is not None else connect_store(settings)
    log.info("store.opened", store=store.description, schema_version=store.schema_version())
    metrics = Metrics(store.kind, enabled=settings.metrics_port is not None)
    health = Health(stale_after=settings.health_stale_after)
    metrics.watch(health)
    if settings.metrics_port is not None:
        _serve_metrics(settings, settings.metrics_port, health, metrics, log)
    services = build_services(settings, store, handlers, metrics=metrics, health=health, log=log)
    broker = from_settings(settings)
    opener = session_opener(settings, broker, services, records(store))
    return Worker(settings, broker, opener, log, metrics=metrics, health=health)


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
    processor = processor_for(
        settings, store, handlers, outbox=outbox, on_conflict=conflict
    )  # traced if OTEL_* say so
    retention = Retention(store, settings, letters=DeadLetterRecords(store))
    return Services(
        processor=processor,
        outbox=outbox,
        store=store,
        store_line=StoreLine(
            store, log=log, metrics=metrics, health=health, max_delay=settings.reconnect_max_delay
        ),
        housekeeping=Housekeeping(store, outbox, retention, flush=processor.flush, log=log, metrics=metrics),
        metrics=metrics,
        health=health,
        log=log,
    )


def session_opener(
    settings: Settings, broker: Broker, services: Services, records: DeadLetterRecords
) -> OpenSession:
    """Opens a session: its three connections on one node (the first, from the given one on,
    that accepts), the topology declared, the links over them."""

    def open_session(first: int) -> tuple[Session, int]:
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
            publisher = ConfirmingPublisher(
                publishing, confirm_timeout=settings.confirm_timeout, log=services.log
            )
            letter_queue = AmqpLetters(
                draining,
                letters,
                queue=settings.dead_letter_queue,
                prefetch=LETTERS_IN_HAND,
                read_every=PUMP_EVERY,
            )
            drain = DeadLetterDrain(letter_queue, records, name=settings.dead_letter_queue, log=services.log)
        except BaseException:
            for connection in opened:
                connection.collect()
            raise
        links = Links(deliveries=deliveries, publisher=publisher, letters=drain)
        return Session(links, services, queue=settings.queue, broker=masked(settings.amqp_url)), node

    return open_session


def _serve_metrics(settings: Settings, port: int, health: Health, metrics: Metrics, log: Logger) -> None:
    try:
        serve(health, metrics.registry, settings.metrics_host, port)
    except OSError as exc:
        raise ConfigurationError(
            f"RENEWALS_METRICS_PORT={settings.metrics_port}: cannot listen on"
            f" {settings.metrics_host}:{settings.metrics_port} ({exc.strerror or exc}; another worker or"
            " program may hold the port): choose a free port, or stop what listens there"
        ) from None
    log.info("metrics.serving", host=settings.metrics_host, port=settings.metrics_port)


def connect_store(settings: Settings, *, migrate: bool | None = None) -> SqlStore:
    """The configured store, its schema migrated (or checked, with STORE_MIGRATE off)."""
    store = open_configured_store(settings)
    if settings.store_migrate if migrate is None else migrate:
        before, after = store.migrate()
        if before != after:
            logs.get_logger("renewals.store").info("store.migrated", from_version=before, to_version=after)
    else:
        store.check_schema()
    return store


def run_until_signalled(
    settings: Settings, *, handlers: HandlerMap = HANDLERS, records: Records = DeadLetterRecords
) -> None:
    """Run the worker; SIGTERM/SIGINT stop it gracefully within `shutdown_grace` seconds."""
    log = logs.get_logger("renewals.worker")
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        if stop.is_set():
            return
        log.info("worker.stopping", signal=signal.Signals(signum).name, grace_s=settings.shutdown_grace)
        stop.set()
        watchdog = threading.Timer(settings.shutdown_grace, _give_up, args=(log,))
        watchdog.daemon = True
        watchdog.start()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    log.info("worker.starting", broker=masked(settings.amqp_url), store=masked(settings.store_url))
    try:
        store = _store_when_it_answers(settings, stop, log)
        if store is not None:
            build_worker(settings, handlers=handlers, store=store, records=records).run(stop)
    except CANNOT_WORK as exc:
        _stop_for_good(log, str(exc), EX_CONFIG)
    except StoreRefused as exc:
        _stop_for_good(log, store_refusal(settings.store_url, exc), EX_REFUSED)
    except BrokerRefused as exc:
        _stop_for_good(log, str(exc), EX_REFUSED)


def _stop_for_good(log: Logger, error: str, status: int) -> None:
    """One error line saying what to fix, and the exit status that tells it from an outage."""
    log.error("worker.cannot_start", error=error, exit_status=status)
    sys.stderr.flush()
    sys.exit(status)


def _store_when_it_answers(settings: Settings, stop: threading.Event, log: Logger) -> SqlStore | None:
    """The store, waited for with jittered backoff if it is not there yet; None if stopped."""
    retrying = until_stopped(
        StoreUnavailable,
        max_delay=settings.reconnect_max_delay,
        stop=stop,
        sleep=stop.wait,
        before_sleep=lambda state: log.warning(
            "store.unavailable",
            store=masked(settings.store_url),
            error=str(state.outcome.exception() if state.outcome else None),
            retry_in_s=round(state.next_action.sleep, 2) if state.next_action else None,
        ),
    )
    store: SqlStore | None = retrying(connect_store, settings)
    return store


def _give_up(log: Logger) -> None:
    """The grace period ran out: exit now; unacknowledged messages will be redelivered."""
    log.error("worker.grace_period_exceeded")
    sys.stderr.flush()
    os._exit(EX_SOFTWARE)
