"""Running the worker: waiting for the store, the signals that stop it, the watchdog that ends a
shutdown that overruns its grace, and the exit status that says why it stopped for good.

What runs is built by the composition root (`worker.app.build_worker`); nothing is built here.
"""

import gc
import os
import signal
import sys
import threading
from typing import Any

from handlers import HANDLERS, HandlerMap
from worker import logs
from worker.app import build_worker, worker_store
from worker.broker.endpoints import BrokerRefused
from worker.broker.topology import TopologyMismatch
from worker.dead_letters.drain import Records
from worker.dead_letters.records import DeadLetterRecords
from worker.exits import EX_CONFIG, EX_FAILED, EX_REFUSED, EX_SOFTWARE
from worker.failures import store_refusal, store_unavailable
from worker.logs import Logger
from worker.redaction import masked
from worker.retrying import until_stopped
from worker.settings import ConfigurationError, Settings
from worker.store import SchemaTooNew, SchemaTooOld, SqlStore, StoreRefused, StoreUnavailable, StoreUnusable
from worker.tracing import TracingMisconfigured

CANNOT_WORK = (SchemaTooNew, SchemaTooOld, TopologyMismatch, ConfigurationError, TracingMisconfigured)
"""Stops with EX_CONFIG: the configuration must change first."""


def run_configured(settings: Settings) -> None:
    """`renewals run`: the worker itself, or with RENEWALS_PROCESSES above 1 a supervisor of that
    many (`worker.supervision`); exits with the supervisor's status."""
    if settings.processes == 1:
        run_until_signalled(settings)
        return
    from worker.supervision import supervise  # the one-process worker never loads the supervisor

    sys.exit(supervise(settings))


def follow_parent(pid: int) -> None:
    """A supervised worker (`run --supervised-by PID`) is sent SIGTERM, and stops gracefully,
    when its supervisor dies, even by kill -9 (Linux's parent-death signal); where that signal
    is missing, or the supervisor is already gone, it stops at once with one line."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the supervisor's SIGTERM is the only way we are stopped
    if os.getppid() != pid:
        _stop_for_good(logs.get_logger("renewals.worker"), f"the supervisor (pid {pid}) is gone", EX_FAILED)


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
            worker = build_worker(settings, handlers=handlers, store=store, records=records)
            collect_less()
            worker.run(stop)
    except CANNOT_WORK as exc:
        _stop_for_good(log, str(exc), EX_CONFIG)
    except StoreRefused as exc:
        _stop_for_good(log, store_refusal(settings.store_url, exc), EX_REFUSED)
    except BrokerRefused as exc:
        _stop_for_good(log, str(exc), EX_REFUSED)
    except StoreUnusable as exc:  # a damaged store: a supervisor may try again (exit 1)
        _stop_for_good(log, store_unavailable(settings.store_url, exc), EX_FAILED)


YOUNG_COLLECTION_EVERY = 50_000
"""Container objects allocated (net) between two collections of the youngest generation."""


def collect_less() -> None:
    """Once the worker is built: what start-up made lives as long as the process, so it is
    frozen out of the garbage collector's sight, and the youngest generation is collected every
    50,000 allocations (net) rather than every 700. A batch of 500 holds some 15,000 objects
    until it ends, nearly all freed by reference counting then: with the defaults the collector
    walked the whole heap every few batches, about a tenth of the worker's CPU; at 10,000 it
    still walked each batch's objects twice, 6.5 µs per event; at 50,000 none ran in 20,000
    events (`python -m bench.batches`, which times the collector; issue 30). The
    worker makes few cycles (an exception's traceback), so fewer collections hold little more."""
    gc.freeze()
    gc.set_threshold(YOUNG_COLLECTION_EVERY, 10, 10)


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
    store: SqlStore | None = retrying(worker_store, settings)
    return store


def _give_up(log: Logger) -> None:
    """The grace period ran out: exit now; unacknowledged messages will be redelivered."""
    log.error("worker.grace_period_exceeded")
    sys.stderr.flush()
    os._exit(EX_SOFTWARE)
