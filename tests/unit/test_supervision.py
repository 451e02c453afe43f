"""The supervisor of `renewals run --processes N` without a broker: its merge of the children's
metrics, and its verdict on children that cannot start (real processes that exit at once)."""

import signal
import sys
import time

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker.exits import EX_CONFIG, EX_FAILED
from worker.settings import ConfigurationError, load_settings
from worker.supervision.pool import START_ATTEMPTS, supervise
from worker.supervision.probes import merged_metrics


def child_metrics(handled: dict[str, int], pending: int, batches: list[float]) -> str:
    """One child's text, as prometheus_client writes it for the worker's kinds of metric."""
    registry = CollectorRegistry()
    messages = Counter("renewals_messages", "Messages.", ["type", "outcome"], registry=registry)
    for outcome, count in handled.items():
        messages.labels("RenewalApproaching", outcome).inc(count)
    Gauge("renewals_outbox_pending", "Rows.", registry=registry).set(pending)
    sizes = Histogram("renewals_batch_messages", "Sizes.", buckets=(1, 10, 100), registry=registry)
    for size in batches:
        sizes.observe(size)
    return generate_latest(registry).decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a text, parsed by prometheus_client's own parser, `_created` left out."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_merged_metrics_are_the_sum_of_every_childs_samples() -> None:
    """Two children's counters, gauge and histogram merge into one text whose every sample is the sum of the two, parsed as Prometheus would."""
    first = child_metrics({"renewal.notification_requested": 3, "message.duplicate_event": 1}, 2, [1, 50])
    second = child_metrics({"renewal.notification_requested": 4}, 5, [5, 500, 7])
    merged = merged_metrics([first, second])
    one, two = samples(first), samples(second)
    expected = {key: one.get(key, 0.0) + two.get(key, 0.0) for key in one.keys() | two.keys()}
    assert samples(merged) == expected
    assert expected[("renewals_messages_total", (("outcome", "renewal.notification_requested"), ("type", "RenewalApproaching")))] == 7  # fmt: skip
    assert expected[("renewals_batch_messages_count", ())] == 5
    assert merged.count("# TYPE renewals_messages_total counter") == 1


def test_merged_created_timestamps_are_the_earliest() -> None:
    """A `_created` sample is a time, not a count: the merge keeps the earliest of the children's."""
    early = "# TYPE x counter\nx_total 1.0\nx_created 100.5\n"
    late = "# TYPE x counter\nx_total 2.0\nx_created 200.0\n"
    assert merged_metrics([late, early]) == "# TYPE x counter\nx_total 3.0\nx_created 100.5\n"


def test_children_that_die_before_they_are_ready_end_the_run_after_start_attempts() -> None:
    """Children that exit with 3 at once are restarted until START_ATTEMPTS of them died unready; then the run ends with exit status 1, within the backoff's few seconds."""
    began = time.monotonic()
    status = supervise(
        load_settings(processes=2, reconnect_max_delay=1),
        command=[sys.executable, "-c", "import sys; sys.exit(3)"],
        environ={},
    )
    assert status == EX_FAILED and START_ATTEMPTS > 1
    assert time.monotonic() - began < 10
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_a_child_that_stops_for_good_ends_the_run_at_once_with_its_status() -> None:
    """A child that exits 78 (a setting that cannot work) is not restarted: the run ends with 78 at its first death."""
    began = time.monotonic()
    status = supervise(
        load_settings(processes=2, reconnect_max_delay=30),
        command=[sys.executable, "-c", f"import sys; sys.exit({EX_CONFIG})"],
        environ={},
    )
    assert status == EX_CONFIG
    assert time.monotonic() - began < 5  # a restart would have waited out a backoff first
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def test_a_process_count_out_of_bounds_is_one_line_naming_the_setting() -> None:
    """RENEWALS_PROCESSES below 1 or above 64 is refused before anything starts, with one line naming the setting and its bound."""
    for count, bound in ((0, "greater than or equal to 1"), (65, "less than or equal to 64")):
        with pytest.raises(ConfigurationError) as refused:
            load_settings(processes=count)
        assert str(refused.value).startswith(f"RENEWALS_PROCESSES={count}: input should be {bound};")
        assert "\n" not in str(refused.value)
