"""The metrics the alerting rules need beyond the counters of the canonical log lines: the
store's answer as a gauge, redelivered deliveries, and replayed messages dead-lettered again."""

from prometheus_client import generate_latest

from worker.messaging import REPLAY_COUNT, Delivery, Outgoing
from worker.service.failures import Failure
from worker.service.health import Health
from worker.service.metrics import Metrics
from worker.service.processing import Result


def scrape(metrics: Metrics) -> dict[str, float]:
    """`name{labels}` -> value, from the registry's Prometheus text."""
    found = {}
    for line in generate_latest(metrics.registry).decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def dead_lettered(reason: str, *, redelivered: bool = False, replays: int | None = None) -> Result:
    headers = {} if replays is None else {REPLAY_COUNT: replays}
    delivery = Delivery(b"{}", {"application_headers": headers}, "renewals.events", "x", 1, redelivered)
    failure = Failure("message.dead_lettered", "invalid", reason, "bad", Outgoing("dlx", "dlq", b"{}"))
    return Result(delivery, "message.dead_lettered", {}, failure=failure)


def test_the_store_gauge_follows_the_stores_answer() -> None:
    """`renewals_store_up` is 1 while the store answers and 0 from the moment an outage is noticed."""
    health = Health(stale_after=60)
    metrics = Metrics("sqlite")
    metrics.watch(health)
    assert scrape(metrics)["renewals_store_up"] == 1.0
    health.store(answers=False)
    assert scrape(metrics)["renewals_store_up"] == 0.0
    health.store(answers=True)
    assert scrape(metrics)["renewals_store_up"] == 1.0


def test_redelivered_and_replayed_dead_letters_are_counted_apart() -> None:
    """Of four dead letters, the two carrying `x-replay-count` count as replayed ones failing
    again (by reason), and the one the broker marked redelivered counts as a redelivery."""
    metrics = Metrics("sqlite")
    metrics.settled(
        [
            dead_lettered("no_recipient"),
            dead_lettered("no_recipient", replays=1),
            dead_lettered("invalid_payload", replays=2),
            dead_lettered("no_recipient", redelivered=True),
        ],
        0.001,
    )
    found = scrape(metrics)
    assert found['renewals_dead_letters_total{reason="no_recipient"}'] == 3
    assert found['renewals_replayed_dead_letters_total{reason="no_recipient"}'] == 1
    assert found['renewals_replayed_dead_letters_total{reason="invalid_payload"}'] == 1
    assert found["renewals_redelivered_total"] == 1


def test_the_series_alerts_take_a_rate_of_exist_at_zero_from_the_start() -> None:
    """Before any traffic, every dead-letter reason and every event type's dead-lettered outcome
    is already a series at 0, so the first dead letter is an increase a rate can see."""
    found = scrape(Metrics("sqlite"))
    for reason in ("no_recipient", "invalid_json", "retries_exhausted"):
        assert found[f'renewals_dead_letters_total{{reason="{reason}"}}'] == 0
        assert found[f'renewals_replayed_dead_letters_total{{reason="{reason}"}}'] == 0
    for kind in ("RenewalApproaching", "OwnerChanged", "unknown"):
        assert found[f'renewals_messages_total{{outcome="message.dead_lettered",type="{kind}"}}'] == 0
