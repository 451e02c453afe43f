"""One run: deploy, publish the stream while injecting faults, wait for the outputs, check them."""

import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from random import Random

from support.chaos.billing import Billing
from support.chaos.checker import check
from support.chaos.deployment import Deployment, deployed
from support.chaos.observe import OBSERVER, bind_observer, recorded, settled, take_all
from support.chaos.options import Options
from support.chaos.report import Report
from support.chaos.stream import Stream, build
from support.client import NAMES
from support.polling import wait_until


def run(options: Options) -> Report:
    assert not options.problems(), options.problems()
    rng = Random(f"faults-{options.seed}")
    stream = build(options.seed, options.events)
    faults = [name for name, count in options.faults.items() for _ in range(count)]
    rng.shuffle(faults)
    duration = max(stream.size / options.rate, len(faults) * options.fault_gap)
    folder = Path(tempfile.mkdtemp(prefix="renewals-chaos-"))
    began = time.monotonic()
    with deployed(
        folder, rng, cluster=options.cluster, postgres=options.store == "postgres", rabbitmq=options.rabbitmq
    ) as deployment:
        deployment.start_workers(options.workers)
        bind_observer(deployment.urls[-1])

        def phase_one_handled() -> None:
            wait_until(
                settled(deployment.queue_depths, _work_queues(deployment)),
                "phase 1 handled",
                options.timeout,
                every=0.5,
            )

        billing = Billing(
            deployment.urls,
            stream.phases,
            stream.size / duration,
            phase_one_handled,
            exchange=NAMES.events_exchange,
        )
        deployment.started = time.monotonic()
        billing.start()
        ready = 0.0  # seconds into the run: the previous fault is over, and half a gap more
        for number, fault in enumerate(faults):
            _wait(deployment, max((number + 1) * duration / (len(faults) + 1), ready))
            deployment.inject(fault)
            ready = time.monotonic() - deployment.started + options.fault_gap / 2
        while billing.is_alive():
            _wait(deployment, time.monotonic() - deployment.started + 1.0)
        _finish(deployment, stream, options.timeout)
        codes = deployment.stop_workers()
        left = {
            q: n
            for q, n in deployment.queue_depths().items()
            if q in [*_work_queues(deployment), NAMES.unrouted_queue] and n
        }
        notifications = take_all(deployment.urls[-1], OBSERVER)
        rabbitmq = deployment.rabbitmq_version()
        dead_letters = recorded(deployment.store_url)
    unclean = sum(1 for code in codes if code != 0)
    problems = {
        "worker exits not asked for / unclean stops": unclean
        + sum(1 for incident in deployment.incidents if incident.failed),
        "billing gave up": int(billing.error is not None),
    }
    verdict = check(stream, notifications, dead_letters, left, problems)
    if billing.error is not None:
        verdict.examples.insert(0, f"billing failed: {type(billing.error).__name__}: {billing.error}")
    if unclean:
        verdict.examples.insert(0, f"workers' exit codes at the end: {codes}")
    seen = _seen(deployment)
    kept = folder if not verdict.ok else None
    if kept is None:
        shutil.rmtree(folder, ignore_errors=True)
    stats: dict[str, object] = {
        "published": stream.size,
        "confirmed": billing.confirmed,
        "billing connections": billing.connections,
        "sent again after a lost connection": billing.resent,
        "returned unroutable": billing.returned,
        "offered rate (events/s)": round(stream.size / duration),
    }
    return Report(
        options, stream, deployment.incidents, verdict, stats, seen, time.monotonic() - began, kept, rabbitmq
    )


SEEN = (
    "broker.connection_lost",
    "store.lost",
    "store.recovered",
    "message.retry_scheduled",
    "outbox.republished",
    "outbox.orphans_republished",
    "outbox.set_aside",
    "message.duplicate_event",
    "renewal.duplicate_reminder",
    "owner.stale_ignored",
    "owner.duplicate_ignored",
)


def _seen(deployment: Deployment) -> dict[str, int]:
    counts = Counter(line.get("event") for worker in deployment.every_worker for line in worker.lines())
    return {event: counts[event] for event in SEEN}


def _work_queues(deployment: Deployment) -> list[str]:
    """The worker's queue and its retry tiers (read from the broker: whatever the settings)."""
    try:
        names = list(deployment.queue_depths())
    except Exception:
        names = []
    return [NAMES.queue, *(name for name in names if name.startswith(f"{NAMES.queue}.retry."))]


def _wait(deployment: Deployment, until: float) -> None:
    """Until `until` seconds into the run, restarting any worker that exits by itself."""
    while (left := until - (time.monotonic() - deployment.started)) > 0:
        time.sleep(min(left, 0.5))
        deployment.check_workers()


def _finish(deployment: Deployment, stream: Stream, timeout: float) -> None:
    """Until the work queues are empty and as many outputs are in as expected (or `timeout`),
    then a little longer, for late copies (an outbox sweep, say)."""
    queues = _work_queues(deployment)
    empty = settled(deployment.queue_depths, queues)

    def done() -> bool:
        deployment.check_workers()
        try:
            depths = deployment.queue_depths()
        except Exception:
            return False
        notified = depths.get(OBSERVER, 0) >= len(stream.reminders)
        return notified and len(recorded(deployment.store_url)) >= len(stream.dead_letters) and empty()

    try:
        wait_until(done, "every output", timeout, every=1.0)
    except TimeoutError as exc:
        deployment.log("timeout", str(exc), failed=False)
    time.sleep(3.0)  # past the outbox grace (2 s) and a sweep (every 1 s): a late republish is counted too
