"""What the worker tells Prometheus. Every label has a fixed, small set of values: event types,
outcomes (the log lines' event names), audiences, dead-letter reasons, delay tiers; never an
event, client or partner id.

Counting happens per batch where the canonical log lines are written, so the counters and the
log lines always agree.
"""

import time
from collections import Counter as Tally
from collections.abc import Sequence
from typing import Any, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from events import INPUTS
from worker.messaging import REPLAY_COUNT
from worker.service.failures import DeadLetterReason
from worker.service.processing import Result
from worker.settings import VERSION

_TYPES = frozenset(kind.type for kind in INPUTS)
_AGE_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 86400, 7 * 86400)


class Metrics:
    """The worker's metrics, in a registry of its own (so tests can run several)."""

    def __init__(self, store_kind: str, *, enabled: bool = True) -> None:
        self.enabled = enabled  # off: nothing is counted (nobody scrapes), the hot path pays nothing
        self.registry = registry = CollectorRegistry()
        self.messages = Counter(
            "renewals_messages", "Messages handled, by event type and outcome (the log line's event name).",
            ["type", "outcome"], registry=registry,
        )  # fmt: skip
        self.notifications = Counter(
            "renewals_notifications", "Notifications requested, by audience and where the setting came from.",
            ["audience", "resolved_from"], registry=registry,
        )  # fmt: skip
        self.dead_letters = Counter(
            "renewals_dead_letters",
            "Messages dead-lettered by the worker, by reason.",
            ["reason"],
            registry=registry,
        )
        self.retries = Counter(
            "renewals_retries", "Messages sent to a delay tier for a retry, by the tier's delay.",
            ["delay_seconds"], registry=registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "renewals_batch_messages", "Deliveries per batch.", registry=registry,
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
        )  # fmt: skip
        self.batch_seconds = Histogram(
            "renewals_batch_duration_seconds", "Time to parse, decide and commit a batch.", registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )  # fmt: skip
        self.confirm_seconds = Histogram(
            "renewals_confirm_wait_seconds", "Time spent waiting for a batch's publisher confirms.",
            registry=registry, buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5, 15),
        )  # fmt: skip
        self.event_age = Histogram(
            "renewals_event_age_seconds", "Age of an event when the worker handled it (now minus its time).",
            registry=registry, buckets=_AGE_BUCKETS,
        )  # fmt: skip
        self.outbox_pending = Gauge(
            "renewals_outbox_pending_rows", "Notifications committed but not yet confirmed by the broker.",
            registry=registry,
        )  # fmt: skip
        self.outbox_oldest = Gauge(
            "renewals_outbox_oldest_age_seconds", "Age of the oldest unconfirmed notification (0: none).",
            registry=registry,
        )  # fmt: skip
        self.outbox_set_aside = Counter(
            "renewals_outbox_set_aside", "Notifications set aside in the outbox: they cannot be encoded.",
            registry=registry,
        )  # fmt: skip
        self.store_errors = Counter(
            "renewals_store_errors", "Store errors, by kind (unavailable: outage; conflict: redone).",
            ["kind"], registry=registry,
        )  # fmt: skip
        self.reconnects = Counter(
            "renewals_reconnects", "Connections opened again after a loss, by what was lost.", ["target"],
            registry=registry,
        )  # fmt: skip
        self.redelivered = Counter(
            "renewals_redelivered", "Deliveries the broker marked redelivered (in hand when a worker died).",
            registry=registry,
        )  # fmt: skip
        self.replayed_dead_letters = Counter(
            "renewals_replayed_dead_letters",
            "Replayed messages (`x-replay-count` set) dead-lettered again, by reason.",
            ["reason"],
            registry=registry,
        )
        self._last_delivery = time.monotonic()
        Gauge(
            "renewals_seconds_since_last_delivery", "Seconds since a delivery arrived (since start if none).",
            registry=registry,
        ).set_function(lambda: time.monotonic() - self._last_delivery)  # fmt: skip
        Gauge(
            "renewals_build_info", "The worker's version and store kind (always 1).", ["version", "store"],
            registry=registry,
        ).labels(VERSION, store_kind).set(1)  # fmt: skip
        for target in ("broker", "store"):
            self.reconnects.labels(target)
        for kind in ("unavailable", "conflict"):
            self.store_errors.labels(kind)
        # Every series an alert takes a rate of exists from the start at 0: the first dead letter
        # of a reason is then an increase Prometheus sees, not a series appearing at 1.
        for reason in get_args(DeadLetterReason):
            self.dead_letters.labels(reason)
            self.replayed_dead_letters.labels(reason)
        for kind in (*sorted(_TYPES), "unknown"):
            self.messages.labels(kind, "message.dead_lettered")

    def watch(self, health: Any) -> None:
        """Readiness and the store's answer as gauges too, for dashboards and alerts (the probes
        read them from /readyz)."""
        Gauge(
            "renewals_ready", "1 while /readyz would answer 200, else 0.", registry=self.registry
        ).set_function(lambda: 1.0 if health.ready()[0] else 0.0)
        Gauge(
            "renewals_store_up", "1 while the store answers, 0 during a store outage.", registry=self.registry
        ).set_function(lambda: 1.0 if health.store_answers else 0.0)

    def delivered(self, count: int, seconds: float) -> None:
        """A batch arrived and was committed in `seconds`."""
        self._last_delivery = time.monotonic()
        if not self.enabled:
            return
        self.batch_size.observe(count)
        self.batch_seconds.observe(seconds)

    def settled(self, results: Sequence[Result], confirm_seconds: float) -> None:
        """A batch's results, confirmed and acknowledged: what the log lines say, counted."""
        if not self.enabled:
            return
        self.confirm_seconds.observe(confirm_seconds)
        outcomes: Tally[tuple[str, str]] = Tally()
        notifications: Tally[tuple[str, str]] = Tally()
        reasons: Tally[str] = Tally()
        replayed: Tally[str] = Tally()
        tiers: Tally[str] = Tally()
        redelivered = 0
        now = time.time()
        observe_age = self.event_age.observe
        for result in results:
            event = result.event
            redelivered += result.delivery.redelivered
            outcomes[
                (event.type if event is not None and event.type in _TYPES else "unknown", result.outcome)
            ] += 1
            if event is not None:
                observe_age(max(0.0, now - event.time.timestamp()))
            if result.notification is not None:
                notifications[(result.notification.audience, result.notification.resolved_from)] += 1
            failure = result.failure
            if failure is not None:
                if failure.outcome == "message.dead_lettered":
                    reasons[failure.reason] += 1
                    if result.delivery.headers.get(REPLAY_COUNT):
                        replayed[failure.reason] += 1
                elif failure.delay is not None:
                    tiers[f"{failure.delay:g}"] += 1
        _add(self.messages, outcomes)
        _add(self.notifications, notifications)
        _add(self.dead_letters, reasons)
        _add(self.retries, tiers)
        _add(self.replayed_dead_letters, replayed)
        if redelivered:
            self.redelivered.inc(redelivered)

    def outbox(self, pending: int, oldest_age_s: float) -> None:
        self.outbox_pending.set(pending)
        self.outbox_oldest.set(oldest_age_s)


def _add(counter: Counter, tally: "Tally[Any]") -> None:
    for labels, count in tally.items():
        counter.labels(*(labels if isinstance(labels, tuple) else (labels,))).inc(count)
