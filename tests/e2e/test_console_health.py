"""The console's health strip and /api/health read the broker through one connection the
console keeps, with a short cache: polling them opens no connection per request, and a broker
that goes away and comes back is reported, then read again. With no worker on the queue (or one
that takes nothing) the strip turns red, and a replay must be confirmed."""

import time
from collections.abc import Iterator
from pathlib import Path

import amqp
import pytest

from support.amqp import connect
from support.console import OPERATOR, VIEWER, basic, in_process, sign_in
from support.letters import new_letter
from support.polling import wait_until
from support.tcp_proxy import TcpProxy
from tests.e2e.commands import ok, renewals
from worker.console.health import FRESH_FOR, ConsumingWatch
from worker.settings import Settings

pytestmark = pytest.mark.other_brokers_slow  # what the console reads and says, over any broker


def test_twenty_health_requests_and_strips_open_one_broker_connection(amqp_url: str, tmp_path: Path) -> None:
    """20 /api/health calls and 20 health strips, then more after the cache ran out: one connect through the proxy, and the queue's depth as it is now."""
    queue = Settings().queue
    setup = connect(amqp_url)
    channel = setup.channel()
    channel.queue_declare(queue, durable=True, auto_delete=False)
    try:
        with TcpProxy(amqp_url) as proxy:
            client, _ = in_process(tmp_path, [], amqp_url=proxy.url)
            for _ in range(20):
                api = client.get("/api/health", headers=basic(VIEWER)).json()
                strip = client.get("/health", headers=basic(VIEWER))
                assert api["broker_error"] is None and api["queue_depth"] == 0 and strip.status_code == 200
            channel.basic_publish(amqp.Message(b"{}"), exchange="", routing_key=queue)
            time.sleep(FRESH_FOR + 0.2)
            assert client.get("/api/health", headers=basic(VIEWER)).json()["queue_depth"] == 1
            assert proxy.accepted == 1
    finally:
        channel.queue_delete(queue)
        setup.close()


def test_a_broker_gone_and_back_is_reported_then_read_through_a_new_connection(
    amqp_url: str, tmp_path: Path
) -> None:
    """The proxy cut: the next read after the cache says the broker is unreachable; restored: it is read again, through a second connection."""
    with TcpProxy(amqp_url) as proxy:
        client, _ = in_process(tmp_path, [], amqp_url=proxy.url)
        assert client.get("/api/health", headers=basic(VIEWER)).json()["broker_error"] is None
        proxy.cut()
        wait_until(
            lambda: client.get("/api/health", headers=basic(VIEWER)).json()["broker_error"] is not None,
            timeout=FRESH_FOR + 10,
            what="the broker reported unreachable",
        )
        proxy.restore()
        wait_until(
            lambda: client.get("/api/health", headers=basic(VIEWER)).json()["broker_error"] is None,
            timeout=FRESH_FOR + 10,
            what="the broker read again",
        )
        assert proxy.accepted == 2


@pytest.fixture
def queue_without_worker(amqp_url: str) -> Iterator[tuple[amqp.Channel, str]]:
    """This test's vhost as a stopped worker leaves it: the topology declared, no consumer."""
    ok(renewals(amqp_url, "topology", "--declare"))
    connection = connect(amqp_url)
    try:
        yield connection.channel(), Settings().queue
    finally:
        connection.close()


def test_with_the_worker_stopped_the_strip_is_red_and_a_replay_needs_confirming(
    amqp_url: str, tmp_path: Path, queue_without_worker: tuple[amqp.Channel, str]
) -> None:
    """No consumer on the queue: /api/health says not consuming, the strip is red and says why; the API's
    replay is a 409 in one line unless confirm_no_consumer; the form's preview warns with a box to tick,
    and its confirmation without the box is a 409 page."""
    _, queue = queue_without_worker
    client, records = in_process(tmp_path, [new_letter(event_id="evt-stopped")], amqp_url=amqp_url)
    [letter] = records.page().letters
    api = client.get("/api/health", headers=basic(VIEWER)).json()
    assert (api["ready"], api["consuming"], api["queue_consumers"]) == (True, False, 0)
    assert api["not_consuming"] == f"no worker consumes {queue} (0 consumers): start one (`renewals run`)"
    strip = client.get("/health", headers=basic(VIEWER)).text
    assert '<span class="bad" id="readiness">NOT CONSUMING</span>' in strip
    assert (
        f"no worker consumes {queue} (0 consumers)" in strip
        and '<span id="consumers" class="bad">0 consumers' in strip
    )

    replay = {"selection": {"letter": [letter.id]}}
    refused = client.post("/api/replays", json=replay, headers=basic(OPERATOR))
    assert refused.status_code == 409
    assert refused.json()["detail"] == (
        f"no worker consumes {queue} (0 consumers): start one (`renewals run`);"
        " to replay anyway, send confirm_no_consumer: true"
    )
    assert records.get(letter.id) is not None and records.get(letter.id).summary.status == "new"  # type: ignore[union-attr]

    token = sign_in(client, OPERATOR)
    form = {"csrf_token": token, "action": "replay", "letter": str(letter.id), "scope": "checked"}
    preview = client.post("/actions/preview", data=form).text
    assert 'id="no-consumer-warning"' in preview and f"no worker consumes {queue}" in preview
    assert 'name="confirm_no_consumer" value="true" id="confirm-no-consumer" required' in preview
    unconfirmed = client.post("/actions/confirm", data={**form, "rate": "50"})
    assert unconfirmed.status_code == 409 and "tick &#34;replay anyway&#34;" in unconfirmed.text
    assert "<title>busy: " in unconfirmed.text

    confirmed = client.post(
        "/api/replays", json={**replay, "confirm_no_consumer": True}, headers=basic(OPERATOR)
    )
    assert confirmed.status_code == 202, confirmed.text
    wait_until(
        lambda: (
            client.get(f"/api/replays/{confirmed.json()['id']}", headers=basic(VIEWER)).json()["status"]
            == "finished"
        ),
        timeout=30,
        what="the confirmed replay finished",
    )


def test_a_consumer_that_takes_nothing_turns_the_strip_red_after_the_wait(
    amqp_url: str, tmp_path: Path, queue_without_worker: tuple[amqp.Channel, str]
) -> None:
    """A consumer holding one unacknowledged message, two more ready and nothing processed: green at the
    first look, red once the wait has passed, naming the ready count; an empty queue is green again."""
    channel, queue = queue_without_worker
    client, _ = in_process(tmp_path, [], amqp_url=amqp_url)
    console = client.app.state.console  # type: ignore[attr-defined]
    console.consuming = ConsumingWatch(queue, stalled_after=FRESH_FOR + 1)
    ghost = connect(amqp_url).channel()
    ghost.basic_qos(0, 1, False)
    ghost.basic_consume(queue, callback=lambda message: None)  # takes one, never acknowledges it
    for _ in range(3):
        channel.basic_publish(amqp.Message(b"{}"), exchange="", routing_key=queue)
    wait_until(
        lambda: client.get("/api/health", headers=basic(VIEWER)).json()["queue_depth"] == 2,
        timeout=FRESH_FOR + 10,
        what="two messages ready, one held",
    )
    assert client.get("/api/health", headers=basic(VIEWER)).json()["consuming"] is True
    wait_until(
        lambda: not client.get("/api/health", headers=basic(VIEWER)).json()["consuming"],
        timeout=3 * FRESH_FOR + 10,
        what="the strip red",
    )
    api = client.get("/api/health", headers=basic(VIEWER)).json()
    assert api["queue_consumers"] == 1 and api["not_consuming"].startswith(
        f"2 message(s) ready in {queue} and none processed for "
    )
    channel.queue_purge(queue)
    wait_until(
        lambda: client.get("/api/health", headers=basic(VIEWER)).json()["consuming"],
        timeout=FRESH_FOR + 10,
        what="green again with the queue empty",
    )
    ghost.connection.close()
