"""The worker end to end: `renewals run` as a process, pika as billing and as the notification service."""

import json
import uuid
from datetime import date

import pytest

from handlers import ReminderKey, notification_id_for
from support.client import Client
from support.messages import contact, owner_changed, renewal
from support.records import recorded

DORA = contact("dora", "client.example")
ALICE = contact("alice")
BOB = contact("bob")


def by_causation(messages) -> dict:
    return {
        json.loads(body)["data"]["causation_id"]: (method, props, json.loads(body))
        for method, props, body in messages
    }


def test_every_rule_table_row_end_to_end(client: Client, start_worker) -> None:
    """Each row of the rule table in docs/domain.md yields the right recipients, routing key, properties."""
    start_worker()
    out = client.observe()
    client.publish(
        [
            owner_changed("platform", "p-acme", partner_contact=ALICE),
            owner_changed("partner", "p-gamma", partner_contact=BOB),
            renewal("c1", "p-acme", decision_maker=DORA, id="row1"),
            renewal("c2", "p-beta", decision_maker=DORA, id="row2"),
            renewal("c3", "p-acme", id="row3"),
            renewal("c5", "p-gamma", decision_maker=DORA, id="row5"),
        ]
    )
    got = by_causation(client.take(out, 4))
    expected = {
        "row1": ("both", ["dora@client.example"], ["alice@partner.example"], None),
        "row2": ("decision_maker", ["dora@client.example"], [], None),
        "row3": ("partner_contact", ["alice@partner.example"], [], "decision_maker_missing"),
        "row5": ("partner_contact", ["bob@partner.example"], [], None),
    }
    for event_id, (audience, to, cc, fallback) in expected.items():
        method, props, body = got[event_id]
        data = body["data"]
        assert (
            data["audience"],
            [r["email"] for r in data["to"]],
            [r["email"] for r in data["cc"]],
            data["fallback"],
        ) == (audience, to, cc, fallback)
        assert method.routing_key == f"notification.requested.{audience}"
        reminder = ReminderKey(
            data["client_id"], date.fromisoformat(data["renewal_date"]), data["days_until_renewal"]
        )
        assert props.message_id == data["notification_id"] == notification_id_for(reminder) == body["id"]
        assert props.correlation_id == event_id
        assert props.delivery_mode == 2
        assert props.content_type == "application/cloudevents+json"
        assert (body["specversion"], body["type"]) == ("1.0", "NotificationRequested")
    assert client.quiet(out)


@pytest.mark.other_brokers_slow
def test_no_recipient_is_dead_lettered_with_its_reason(client: Client, start_worker, store_url: str) -> None:
    """Row 4 (nobody to address) lands in the dead-letter queue, explained."""
    start_worker()
    client.publish([renewal("c4", "p-beta", id="row4")])
    [(_method, props, body)] = recorded(store_url, 1)
    assert props.headers["x-error-reason"] == "no_recipient"
    assert json.loads(body)["id"] == "row4"


def test_a_duplicate_delivery_gives_one_notification(client: Client, start_worker) -> None:
    """The same event delivered twice, and the same reminder under a second id: one notification."""
    start_worker()
    out = client.observe()
    event = renewal("c1", None, decision_maker=DORA)
    client.publish([event, event, {**event, "id": "billing-retry-" + uuid.uuid4().hex}])
    client.take(out, 1)
    assert client.quiet(out, 1.0)


@pytest.mark.other_brokers_slow
def test_bad_input_is_dead_lettered_and_the_next_good_event_still_processed(
    client: Client, start_worker, store_url: str
) -> None:
    """Each kind of bad input gets its reason and the headers docs/domain.md lists; the worker lives on."""
    worker = start_worker()
    out = client.observe()
    good = renewal("c1", None, decision_maker=DORA)
    client.publish([b"{not json"], content_type="application/json")
    client.publish([good])
    [(_, props, _)] = recorded(store_url, 1)
    headers = props.headers
    assert headers["x-error-reason"] == "invalid_json"
    assert headers["x-original-exchange"] == "renewals.events"
    assert headers["x-original-routing-key"] == "renewal.approaching"
    assert headers["x-attempts"] == 1
    assert {"x-error-detail", "x-failed-at", "x-worker-version", "x-worker-host"} <= set(headers)
    [(_, _, body)] = client.take(out, 1)
    assert json.loads(body)["data"]["causation_id"] == good["id"]
    assert worker.process.poll() is None


def test_output_with_no_queue_bound_is_kept_in_the_unrouted_queue(client: Client, start_worker) -> None:
    """Nobody listens yet: the confirmed notification waits in renewals.notifications.unrouted."""
    start_worker()
    event = renewal("c1", None, decision_maker=DORA)
    client.publish([event])
    [(_, props, _)] = client.take("renewals.notifications.unrouted", 1)
    assert props.correlation_id == event["id"]


@pytest.mark.other_brokers_slow
def test_the_worker_runs_on_postgresql_too(client: Client, start_worker, postgres_url: str) -> None:
    """The store plugs in by URL: the same rules hold with RENEWALS_STORE_URL=postgresql://..."""
    start_worker(RENEWALS_STORE_URL=postgres_url)
    out = client.observe()
    client.publish(
        [
            owner_changed("platform", "p-acme", partner_contact=ALICE),
            renewal("c1", "p-acme", decision_maker=DORA, id="pg-row1"),
            renewal("c1", "p-acme", decision_maker=DORA, id="pg-row1-again"),
        ]
    )
    [(method, props, _body)] = client.take(out, 1)
    assert method.routing_key == "notification.requested.both"
    assert props.correlation_id == "pg-row1"
    assert client.quiet(out)


@pytest.mark.other_brokers_slow
def test_logs_are_json_lines_without_the_broker_password(client: Client, start_worker) -> None:
    """One canonical JSON line per message, with ids and outcome; the password is masked."""
    worker = start_worker()
    event = renewal("c1", None, decision_maker=DORA)
    client.publish([event])
    [line] = worker.wait_for("renewal.notification_requested")
    assert (line["event_id"], line["type"], line["client_id"]) == (event["id"], "RenewalApproaching", "c1")
    text = worker.log_path.read_text()
    assert ":guest@" not in text and ":***@" in text
