"""The reminder ledger through the real worker and broker, on both stores: a notified reminder's
row is stamped when the broker confirms it, a dead-lettered one says so, a replayed one links its
letter, and an owner change is in the history (docs/domain.md, "The reminder ledger")."""

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from support.client import Client
from support.messages import contact, owner_changed, renewal
from support.polling import wait_until
from worker.messaging import REPLAY_OF_LETTER, REPLAY_OPERATION

pytestmark = pytest.mark.any_broker  # the ledger is the store's: the broker's version plays no part

DORA = contact("dora", "client.example")
ALICE = contact("alice")
Query = Callable[[str], list[tuple[Any, ...]]]


def sqlite_query(path: Path) -> Query:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with sqlite3.connect(path) as connection:
            return connection.execute(sql).fetchall()

    return query


def postgres_query(url: str) -> Query:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(url) as connection:
            return connection.execute(sql).fetchall()

    return query


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_worker_writes_the_ledger_and_stamps_the_confirm(
    backend: str, request: pytest.FixtureRequest, client: Client, start_worker, tmp_path: Path
) -> None:
    """Notified, dead-lettered and replayed reminders and an owner change each leave their row;
    the notified ones get published and confirmed times once the broker confirms them."""
    if backend == "sqlite":
        path = tmp_path / "ledger.db"
        store, query = {"RENEWALS_STORE_URL": f"sqlite:///{path}"}, sqlite_query(path)
    else:
        url = request.getfixturevalue("postgres_url")
        store, query = {"RENEWALS_STORE_URL": url}, postgres_query(url)
    start_worker(**store)
    out = client.observe()
    client.publish([owner_changed("platform", partner_contact=ALICE, id="own-1")])
    client.publish([renewal("c1", decision_maker=DORA, id="r1"), renewal("c2", None, id="r2")])
    client.publish(
        [renewal("c3", decision_maker=DORA, id="r3")],
        headers={REPLAY_OF_LETTER: 77, REPLAY_OPERATION: "op-e2e"},
    )
    client.take(out, 2)

    def settled() -> list[tuple[Any, ...]]:
        """The ledger's rows once all three are there and the notified ones confirmed (the
        worker stamps a batch's confirms with its next transaction, or when it is idle); until
        then, none: any row alone would end the wait before the last stamp."""
        rows = query(
            "SELECT event_id, outcome, reason, owner_event_id, letter_id, replay_operation,"
            " published_at_us, confirmed_at_us FROM reminder_ledger ORDER BY event_id"
        )
        done = len(rows) == 3 and all(row[1] != "notified" or row[7] is not None for row in rows)
        return rows if done else []

    rows = wait_until(settled, "three ledger rows, the notified ones confirmed", 30)
    (r1, *r1_rest), (r2, *r2_rest), (r3, *r3_rest) = rows
    assert (r1, r1_rest[:5]) == ("r1", ["notified", None, "own-1", None, None])
    assert 0 < r1_rest[5] <= r1_rest[6]
    assert (r2, r2_rest[:2], r2_rest[5:]) == ("r2", ["no_notification", "dead_letter"], [None, None])
    assert (r3, r3_rest[:5]) == ("r3", ["notified", None, "own-1", 77, "op-e2e"])
    assert query("SELECT event_id, won, owner_after FROM owner_history") == [("own-1", 1, "platform")]
