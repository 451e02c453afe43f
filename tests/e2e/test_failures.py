"""Failure handling end to end: retries, dead letters that explain themselves, crashes, shutdown."""

import itertools
import json
import random
import signal
import subprocess
import time
from datetime import date
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from handlers import ReminderKey, notification_id_for
from support.client import NAMES, Client, PacedPublisher, audit
from support.messages import contact, encode, envelope, owner_changed, renewal
from support.polling import wait_until
from support.records import recorded
from support.services import rabbitmqctl_for

DORA = contact("dora", "client.example")
POISON = {"RenewalApproaching": "crashes_for_poison_clients"}

DLQ = NAMES.dead_letter_queue


def stream(count: int, prefix: str) -> list[dict]:
    """`count` distinct reminders, each with a decision maker."""
    return [renewal(f"{prefix}-{n}", None, decision_maker=DORA, id=f"{prefix}-evt-{n}") for n in range(count)]


def test_a_failing_handler_is_retried_with_growing_delays_then_dead_lettered(
    client: Client, start_worker, store_url: str
) -> None:
    """A handler bug: retried through the delay tiers, then retries_exhausted with type, message and traceback."""
    worker = start_worker(
        faults={"RenewalApproaching": "fails_for_doomed_clients"},
        RENEWALS_MAX_ATTEMPTS="4",
        RENEWALS_RETRY_DELAYS="[0.2, 0.5, 1.0]",
    )
    out = client.observe()
    doomed = renewal("doomed-1", None, decision_maker=DORA)
    client.publish([doomed], message_id="billing-msg-1", app_id="billing", headers={"x-tenant": "eu"})
    client.publish([renewal("fine-1", None, decision_maker=DORA)])
    [(_method, props, body)] = recorded(store_url, 1, timeout=15)
    headers = props.headers
    assert headers["x-error-reason"] == "retries_exhausted"
    assert (
        "RuntimeError" in headers["x-error-detail"]
        and "injected failure for doomed-1" in headers["x-error-detail"]
    )
    assert headers["x-attempts"] == 4
    assert "Traceback" in headers["x-error-traceback"] and len(headers["x-error-traceback"].encode()) <= 4096
    assert (headers["x-original-exchange"], headers["x-original-routing-key"]) == (
        "renewals.events",
        "renewal.approaching",
    )
    assert body == encode(doomed)
    assert (props.message_id, props.app_id, props.delivery_mode, headers["x-tenant"]) == (
        "billing-msg-1",
        "billing",
        2,
        "eu",
    )
    dead = worker.wait_for("message.dead_lettered")  # logged just after the ack
    retries = [r for r in worker.lines() if r["event"] == "message.retry_scheduled"]
    assert [r["detail"].rsplit(" (", 1)[-1] for r in retries] == [
        "retry in 0.2s)",
        "retry in 0.5s)",
        "retry in 1s)",
    ]
    times = [_seconds(r["timestamp"]) for r in [*retries, *dead]]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert len(retries) == 3 and len(gaps) == 3
    # Each line is written once its copy's publish is confirmed, so a gap is the tier's delay give
    # or take the difference of two confirm round trips (seen down to 2 ms short under load):
    # 50 ms of slack, far from the gap an undelayed retry would leave (a few ms).
    assert gaps[0] >= 0.15 and gaps[1] >= 0.45 and gaps[2] >= 0.95, gaps
    assert len(client.take(out, 1)) == 1


@pytest.mark.other_brokers_slow
def test_each_bad_input_gets_its_reason_and_good_events_between_still_flow(
    client: Client, start_worker, store_url: str
) -> None:
    """Every invalid-input reason of docs/domain.md, interleaved with good events; the worker lives on."""
    worker = start_worker()
    out = client.observe()
    bad = [
        ("unsupported_content_type", encode(renewal()), "text/plain"),
        ("too_large", encode({**renewal(), "padding": "x" * 300_000}), "application/json"),
        ("invalid_json", b'{"specversion": "1.0",', "application/json"),
        ("invalid_envelope", encode({**renewal(), "specversion": "0.3"}), "application/json"),
        ("invalid_payload", encode(owner_changed("partner")), "application/json"),
        ("unknown_event_type", encode(envelope("InvoicePaid", {})), "application/json"),
        ("no_recipient", encode(renewal("lonely", "p-none")), "application/json"),
    ]
    good = stream(len(bad), "good")
    for (_, body, content_type), event in zip(bad, good, strict=True):
        client.publish([body], content_type=content_type)
        client.publish([event])
    dead = recorded(store_url, len(bad))
    assert [props.headers["x-error-reason"] for _, props, _ in dead] == [reason for reason, _, _ in bad]
    assert [body for _, _, body in dead] == [body for _, body, _ in bad]
    got = client.take(out, len(good))
    assert {json.loads(body)["data"]["causation_id"] for _, _, body in got} == {e["id"] for e in good}
    assert worker.process.poll() is None


def test_a_message_the_worker_keeps_dying_on_is_dead_lettered_alone(
    client: Client, start_worker, amqp_url: str, store_url: str
) -> None:
    """Redelivered messages are handled one by one and their tries counted in the store: the
    poison message is dead-lettered after MAX_CRASHES deaths, and its neighbours are processed."""
    crashing = {"faults": POISON, "RENEWALS_MAX_CRASHES": "2"}
    start_worker(**crashing).stop()
    out = client.observe()
    client.publish([renewal("before-poison", None, decision_maker=DORA, id="before-evt")])
    client.publish([renewal("poison-1", None, decision_maker=DORA, id="poison-evt")])
    client.publish([renewal("after-poison", None, decision_maker=DORA, id="after-evt")])
    exits = _crash_loop(start_worker, amqp_url, crashing)
    assert exits == [3, 3, 3], exits  # the batch, then two tries of the poison message alone
    [(_, props, body)] = recorded(store_url, 1)
    assert json.loads(body)["id"] == "poison-evt"
    assert props.headers["x-error-reason"] == "retries_exhausted"
    assert "died 2 times" in props.headers["x-error-detail"]
    result = audit(_until(client, out, {"before-evt", "after-evt"}), {"before-evt", "after-evt"})
    assert (result["lost"], result["unexpected"], result["events_with_two_ids"]) == (0, 0, 0), result
    assert client.quiet(DLQ) and len(recorded(store_url, 1)) == 1  # the queue is a transport: one row


def test_the_quorum_delivery_limit_is_the_last_line_of_defence(
    client: Client, start_worker, amqp_url: str, store_url: str
) -> None:
    """With the worker's own crash count set high, the broker's delivery limit dead-letters the message."""
    crashing = {"faults": POISON, "RENEWALS_DELIVERY_LIMIT": "1", "RENEWALS_MAX_CRASHES": "100"}
    start_worker(**crashing).stop()
    client.publish([renewal("poison-1", None, decision_maker=DORA, id="poison-evt")])
    assert _crash_loop(start_worker, amqp_url, crashing) == [3, 3]
    [(_, props, body)] = recorded(store_url, 1)
    assert json.loads(body)["id"] == "poison-evt"
    assert props.headers.get("x-first-death-reason") == "delivery_limit"


def _crash_loop(start_worker, vhost_url: str, options: dict, tries: int = 6) -> list[int]:
    """Start workers until one stays up with the queue settled (nothing ready, nothing
    unacknowledged); the exit codes of those that died before that."""
    exits = []
    for _ in range(tries):
        worker = start_worker(wait=False, **options)

        def dead_or_settled(worker=worker) -> str | None:
            return "exited" if not worker.running() else "settled" if _settled(vhost_url) else None

        outcome = wait_until(dead_or_settled, "the worker to die or to settle the queue", timeout=60)
        if outcome == "settled":
            break
        exits.append(worker.process.returncode)
    return exits


def _settled(vhost_url: str) -> bool:
    """The worker's queue has a consumer and no message ready or unacknowledged."""
    vhost = unquote(urlsplit(vhost_url).path[1:])
    listed = subprocess.run(
        [
            *rabbitmqctl_for(vhost_url),
            "-q",
            "list_queues",
            "-p",
            vhost,
            "--no-table-headers",
            "name",
            "messages_ready",
            "messages_unacknowledged",
            "consumers",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    for line in listed.splitlines():
        name, ready, unacked, consumers = line.split()
        if name == NAMES.queue:
            return ready == unacked == "0" and consumers != "0"
    return False


def test_kill_9_during_a_stream_loses_nothing_and_never_changes_an_id(
    client: Client, start_worker, amqp_url: str
) -> None:
    """SIGKILL three times during 2,000 events: every event has exactly one notification id, none missing."""
    events = stream(2000, "kill")
    start_worker().stop()  # declares the topology, so billing can publish before any worker runs
    out = client.observe()
    billing = PacedPublisher(amqp_url, events, per_second=800)
    billing.start()
    rng = random.Random(7)
    for _ in range(3):
        worker = start_worker()
        time.sleep(rng.uniform(0.4, 0.9))
        worker.kill()
    start_worker()
    billing.join(30)
    assert billing.error is None
    outputs = _until(client, out, {e["id"] for e in events})
    result = audit(outputs, {e["id"] for e in events})
    assert result["lost"] == 0 and result["unexpected"] == 0 and result["events_with_two_ids"] == 0, result
    assert all(props.message_id == reminder_id(json.loads(body)["data"]) for _, props, body in outputs)


@pytest.mark.other_brokers_slow
def test_sigterm_finishes_the_batch_and_exits_0_with_nothing_redelivered(
    client: Client, start_worker, amqp_url: str
) -> None:
    """A graceful stop mid-stream: exit 0 within the grace period; after a restart no event is seen twice."""
    events = stream(1500, "term")
    start_worker().stop()
    out = client.observe()
    billing = PacedPublisher(amqp_url, events, per_second=1000)
    billing.start()
    first = start_worker(RENEWALS_SHUTDOWN_GRACE="10")
    time.sleep(0.6)
    started = time.monotonic()
    assert first.stop(signal.SIGTERM, timeout=15) == 0
    assert time.monotonic() - started < 10
    second = start_worker()
    billing.join(30)
    outputs = _until(client, out, {e["id"] for e in events})
    result = audit(outputs, {e["id"] for e in events})
    assert result == {"lost": 0, "unexpected": 0, "duplicate_copies": 0, "events_with_two_ids": 0}
    assert not [r for r in second.lines() if r["event"] in ("message.duplicate_event", "outbox.republished")]
    assert any(r["event"] == "worker.stopped" for r in first.lines())


def test_a_cancelled_consumer_is_noticed_and_consuming_resumes(client: Client, start_worker) -> None:
    """The broker cancels the consumer (queue deleted): the worker says so, re-declares and
    consumes again."""
    worker = start_worker()
    out = client.observe()
    client.channel.queue_delete(NAMES.queue)
    worker.wait_for("worker.consuming", count=2)
    client.publish([renewal("c-after", None, decision_maker=DORA)])
    assert len(client.take(out, 1)) == 1
    [lost] = worker.find("worker.consumer_lost")
    assert "the broker cancelled the consumer of renewals.worker" in lost["reason"], lost


def _until(client: Client, queue: str, expected: set[str], timeout: float = 60.0) -> list:
    outputs: list = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        outputs += client.drain(queue)
        if expected <= {json.loads(body)["data"]["causation_id"] for _, _, body in outputs}:
            time.sleep(0.5)  # late duplicates, if any, must be counted too
            return outputs + client.drain(queue)
        time.sleep(0.1)
    return outputs


def _seconds(timestamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


def reminder_id(data: dict[str, Any]) -> str:
    """The notification id of the reminder a notification's data describes."""
    return notification_id_for(
        ReminderKey(data["client_id"], date.fromisoformat(data["renewal_date"]), data["days_until_renewal"])
    )
