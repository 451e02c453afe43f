"""Retention end to end: with a window of seconds, the store's row counts level off while events
keep flowing, and drain to nothing once they stop (docs/domain.md, "Retention")."""

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from support.client import Client, PacedPublisher
from support.messages import contact, renewal
from support.polling import wait_until

pytestmark = pytest.mark.any_broker  # retention is the store's: the broker's version plays no part

DORA = contact("dora", "client.example")
EVENTS, RATE, WINDOW_S = 2400, 300, 2.0
RETENTION = {
    "RENEWALS_INBOX_RETENTION_DAYS": str(WINDOW_S / 86400),
    "RENEWALS_REMINDER_RETENTION_DAYS": "0",
    "RENEWALS_PRUNE_INTERVAL": "0.5",
}

Counter = Callable[[], dict[str, int]]
TABLES = ("inbox", "reminders")


def sqlite_counter(path: Path) -> Counter:
    def count() -> dict[str, int]:
        with sqlite3.connect(path) as connection:
            return {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}

    return count


def postgres_counter(url: str) -> Counter:
    def count() -> dict[str, int]:
        with psycopg.connect(url) as connection:
            return {t: connection.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}

    return count


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_with_a_short_window_the_store_levels_off_instead_of_growing_with_every_event(
    backend: str, request: pytest.FixtureRequest, client: Client, start_worker, amqp_url: str, tmp_path: Path
) -> None:
    """2400 reminders (renewal dates past) at 300/s with a 2 s inbox window: inbox and reminder keys stay at a few seconds' worth, and empty once the stream ends."""
    if backend == "sqlite":
        path = tmp_path / "retention.db"
        store, count = {"RENEWALS_STORE_URL": f"sqlite:///{path}"}, sqlite_counter(path)
    else:
        url = request.getfixturevalue("postgres_url")
        store, count = {"RENEWALS_STORE_URL": url}, postgres_counter(url)
    worker = start_worker(**store, **RETENTION)
    out = client.observe()
    events = [
        renewal(f"kept-{n}", None, decision_maker=DORA, renewal_date="2026-10-01", id=f"kept-evt-{n}")
        for n in range(EVENTS)
    ]
    publisher = PacedPublisher(amqp_url, events, per_second=RATE)
    publisher.start()
    samples: list[dict[str, int]] = []
    deadline = time.monotonic() + EVENTS / RATE + 30
    while publisher.is_alive() and time.monotonic() < deadline:
        samples.append(count())
        publisher.join(0.25)
    assert publisher.error is None and not publisher.is_alive()
    wait_until(lambda: client.count(out) >= EVENTS, f"{EVENTS} notifications", 30)
    # A few seconds' worth at most: the window, a pruning interval and a batch or two of slack.
    bound = RATE * (WINDOW_S + 2)
    late = samples[len(samples) // 3 :]
    assert late and all(sample["inbox"] <= bound and sample["reminders"] <= bound for sample in late), samples
    assert max(sample["inbox"] for sample in samples) < EVENTS / 2, samples
    wait_until(lambda: count() == dict.fromkeys(TABLES, 0), "the store to empty", WINDOW_S + 10)
    assert sum(line["rows"] for line in worker.find("store.pruned")) >= 2 * EVENTS
