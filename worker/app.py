"""The composition root: the only place that builds concrete objects from the settings."""

import importlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from events import OwnerChanged, RenewalApproaching
from handlers import HANDLERS, Decision
from worker import logs
from worker.processing import BatchProcessor
from worker.runtime import Worker
from worker.settings import Settings, masked
from worker.store import open_store

_EVENT_TYPES: dict[str, type[Any]] = {"RenewalApproaching": RenewalApproaching, "OwnerChanged": OwnerChanged}


def handlers_for(settings: Settings) -> Mapping[type[Any], Callable[..., Decision]]:
    """The built-in handler map, with any `RENEWALS_HANDLER_PLUGINS` replacements applied."""
    table = dict(HANDLERS)
    for type_name, target in settings.handler_plugins.items():
        module_name, _, function = target.partition(":")
        table[_EVENT_TYPES[type_name]] = getattr(importlib.import_module(module_name), function)
    return table


def build_worker(settings: Settings) -> Worker:
    log = logs.get_logger("renewals.worker")
    store = open_store(settings.store_url)
    log.info("store.opened", store=store.description)
    return Worker(settings, BatchProcessor(settings, store, handlers_for(settings)), log)


def run_until_signalled(settings: Settings) -> None:
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
    build_worker(settings).run(stop)


def _give_up(log: Any) -> None:
    """The grace period ran out: exit now; unacknowledged messages will be redelivered."""
    log.error("worker.grace_period_exceeded")
    sys.stderr.flush()
    os._exit(70)
