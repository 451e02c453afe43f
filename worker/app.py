"""The composition root: the only place that builds concrete objects from the settings."""

import os
import signal
import sys
import threading
from typing import Any

from handlers import HANDLERS, HandlerMap
from worker import logs
from worker.redaction import masked
from worker.service.processing import BatchProcessor
from worker.service.runtime import Worker
from worker.settings import Settings
from worker.store import SqlStore, open_store


def build_worker(
    settings: Settings, *, handlers: HandlerMap = HANDLERS, store: SqlStore | None = None
) -> Worker:
    """The worker with its store and handlers; tests pass their own (as cosmicpython's
    `bootstrap` does), production takes the built-in handlers and the configured store."""
    log = logs.get_logger("renewals.worker")
    store = store if store is not None else connect_store(settings)
    log.info("store.opened", store=store.description, schema_version=store.schema_version())
    return Worker(settings, BatchProcessor(settings, store, handlers), log)


def connect_store(settings: Settings, *, migrate: bool | None = None) -> SqlStore:
    """The configured store, its schema migrated (or checked, with STORE_MIGRATE off)."""
    store = open_store(
        settings.store_url,
        lock_timeout=settings.store_lock_timeout,
        statement_timeout=settings.store_statement_timeout,
        idle_in_transaction_timeout=settings.store_idle_in_transaction_timeout,
    )
    if settings.store_migrate if migrate is None else migrate:
        before, after = store.migrate()
        if before != after:
            logs.get_logger("renewals.store").info("store.migrated", from_version=before, to_version=after)
    else:
        store.check_schema()
    return store


def run_until_signalled(settings: Settings, *, handlers: HandlerMap = HANDLERS) -> None:
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
    build_worker(settings, handlers=handlers).run(stop)


def _give_up(log: Any) -> None:
    """The grace period ran out: exit now; unacknowledged messages will be redelivered."""
    log.error("worker.grace_period_exceeded")
    sys.stderr.flush()
    os._exit(70)
