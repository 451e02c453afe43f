"""Erasure under a running worker: after `renewals forget --client`, a later event for that client
is handled normally and its data is stored again (the real worker, the real broker)."""

import json

import pytest
from click.testing import CliRunner

from support.client import Client
from support.messages import contact, owner_changed, renewal
from support.polling import wait_until
from worker.cli import main
from worker.store import open_store

pytestmark = pytest.mark.any_broker  # the broker's version plays no part in erasure

DORA = contact("dora", "client.example")
ALICE = contact("alice")


def recipients(body: bytes) -> tuple[list[str], list[str]]:
    data = json.loads(body)["data"]
    return [r["email"] for r in data["to"]], [r["email"] for r in data["cc"]]


def rows(store_url: str, statement: str, *params: str) -> int:
    store = open_store(store_url)
    try:
        return int(store.execute(statement, params).fetchone()[0])
    finally:
        store.close()


def test_a_later_event_for_an_erased_client_is_handled_and_stored_again(
    client: Client, start_worker, store_url: str
) -> None:
    """A client's reminder, then `forget --client --yes` while the worker runs, then a new OwnerChanged and reminder for it: notified as before, its decision maker and setting stored again."""
    start_worker()
    out = client.observe()
    client.publish(
        [
            owner_changed("platform", "p-acme", "c-erased", partner_contact=ALICE),
            renewal("c-erased", "p-acme", decision_maker=DORA, id="before"),
        ]
    )
    [(_, _, first)] = client.take(out, 1)
    assert recipients(first) == (["dora@client.example"], ["alice@partner.example"])
    wait_until(lambda: rows(store_url, "SELECT count(*) FROM outbox") == 0, "the outbox to empty")

    erased = CliRunner().invoke(
        main, ["forget", "--client", "c-erased", "--yes", "--json"], env={"RENEWALS_STORE_URL": store_url}
    )
    assert erased.exit_code == 0, erased.output
    assert json.loads(erased.stdout)["tables"]["decision_makers"] == {"deleted": 1}
    assert rows(store_url, "SELECT count(*) FROM decision_makers WHERE client_id = ?", "c-erased") == 0

    client.publish(
        [
            owner_changed("platform", "p-acme", "c-erased", partner_contact=ALICE, id="owner-after"),
            renewal("c-erased", "p-acme", decision_maker=DORA, renewal_date="2027-01-20", id="after"),
        ]
    )
    [(_, _, second)] = client.take(out, 1)
    assert json.loads(second)["data"]["causation_id"] == "after"
    assert recipients(second) == (["dora@client.example"], ["alice@partner.example"])
    assert rows(store_url, "SELECT count(*) FROM decision_makers WHERE client_id = ?", "c-erased") == 1
    assert rows(store_url, "SELECT count(*) FROM owner_settings WHERE client_id = ?", "c-erased") == 1
    assert client.quiet(out)
