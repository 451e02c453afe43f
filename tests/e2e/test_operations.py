"""Operations end to end: `renewals dlq`, `owners show` and `topology` against the real broker,
with dead letters produced by the real worker process."""

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pika
import pytest
from pika.exceptions import ChannelClosedByBroker

from support.client import NAMES, Client
from support.letters import new_letter
from support.messages import contact, envelope, owner_changed, renewal
from support.polling import wait_until
from tests.e2e.commands import (
    audit_lines,
    causes,
    dead_letters,
    drain,
    failed,
    ids,
    ok,
    renewals,
    wait_for_dead_letters,
)
from worker.broker.topology import BrokerVersion, topology
from worker.dead_letters.records import DeadLetterRecords
from worker.exits import EX_CONFIG, EX_REFUSED
from worker.settings import Settings
from worker.store import open_store

ALICE = contact("alice")
BOB = contact("bob")
DORA = contact("dora", "client.example")

DLQ = NAMES.dead_letter_queue
EVENTS = NAMES.events_exchange


@pytest.fixture(autouse=True)
def _commands_use_the_workers_store(monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    """`renewals dlq` reads the store the test's workers record dead letters in."""
    monkeypatch.setenv("RENEWALS_STORE_URL", store_url)


def produce_mixed_dead_letters(client: Client, start_worker, store_url: str) -> None:
    """Four reasons in a known order, the last two a moment after the first three."""
    start_worker()
    client.publish([renewal("c1", "p-none", id="nr-1")])
    client.publish([b"{not json"], content_type="application/json")
    client.publish([owner_changed("partner", "p-none", id="oc-bad")])  # owner partner without contact
    wait_for_dead_letters(client, 3, store_url)
    time.sleep(0.05)
    client.publish([envelope("Mystery", {"client_id": "c9"}, id="mys-1"), renewal("c2", "p-none", id="nr-2")])
    wait_for_dead_letters(client, 5, store_url)


@pytest.mark.other_brokers_slow
def test_list_shows_each_dead_letter_and_every_filter_selects(
    client: Client, start_worker, amqp_url: str, store_url: str
) -> None:
    """Rows come in queue order with the documented keys, and --reason/--type/--id/--since/--until/--limit narrow them."""
    produce_mixed_dead_letters(client, start_worker, store_url)
    rows = dead_letters(amqp_url)
    assert [(r["id"], r["reason"]) for r in rows] == [
        ("nr-1", "no_recipient"), (None, "invalid_json"), ("oc-bad", "invalid_payload"),
        ("mys-1", "unknown_event_type"), ("nr-2", "no_recipient"),
    ]  # fmt: skip
    first = rows[0]
    assert {"id", "type", "reason", "detail", "failed_at", "attempts", "routing_key"} <= set(first)
    assert (first["type"], first["attempts"], first["routing_key"]) == (
        "RenewalApproaching",
        1,
        "renewal.approaching",
    )
    assert "no decision maker" in first["detail"] and "\n" not in first["detail"]
    assert ids(amqp_url, "--reason", "no_recipient") == ["nr-1", "nr-2"]
    assert ids(amqp_url, "--reason", "invalid_payload", "--reason", "unknown_event_type") == [
        "oc-bad",
        "mys-1",
    ]
    assert ids(amqp_url, "--type", "OwnerChanged") == ["oc-bad"]
    assert ids(amqp_url, "--id", "nr-2") == ["nr-2"]
    assert ids(amqp_url, "--limit", "2") == ["nr-1", None]
    boundary = rows[3]["failed_at"]  # the second wave failed later than the first
    assert ids(amqp_url, "--since", boundary) == ["mys-1", "nr-2"]
    assert ids(amqp_url, "--until", boundary) == ["nr-1", None, "oc-bad"]
    assert ids(amqp_url, "--since", "1h", "--reason", "no_recipient") == ["nr-1", "nr-2"]
    table = ok(renewals(amqp_url, "dlq", "list", "--reason", "no_recipient")).stdout.splitlines()
    assert table[0].split()[:4] == ["#", "id", "type", "reason"] and len(table) == 4
    assert "no dead letter matches --reason too_large" in failed(
        renewals(amqp_url, "dlq", "list", "--reason", "too_large")
    )
    assert failed(renewals(amqp_url, "dlq", "list", "--until", "2000-01-01"))
    unnamed = ok(renewals(amqp_url, "dlq", "show", "#2")).stdout  # no id: named by its record number
    assert "invalid_json" in unnamed and "{not json" in unnamed
    for _ in range(30):  # reading costs nothing, however often (issue 17: on RabbitMQ 4.x it did)
        assert dead_letters(amqp_url) == rows
    assert client.count(DLQ) == 0  # the queue is only their transport


@pytest.mark.other_brokers_slow
def test_show_prints_every_header_and_the_body(
    client: Client, start_worker, amqp_url: str, store_url: str
) -> None:
    """`show` names each header the worker wrote and pretty-prints the body; --json carries them exactly."""
    start_worker()
    event = renewal("c1", "p-none", id="nr-1")
    client.publish([event])
    wait_for_dead_letters(client, 1, store_url)
    text = ok(renewals(amqp_url, "dlq", "show", "nr-1")).stdout
    for header in ("x-error-reason", "x-error-detail", "x-original-exchange", "x-original-routing-key",
                   "x-failed-at", "x-attempts", "x-worker-version", "x-worker-host"):  # fmt: skip
        assert header in text
    assert json.dumps(event["data"], indent=2).replace("\n", "\n  ") in text  # indented JSON body
    record = json.loads(ok(renewals(amqp_url, "dlq", "show", "nr-1", "--json")).stdout)
    assert record["headers"]["x-error-reason"] == "no_recipient"
    assert record["properties"]["content_type"] == "application/cloudevents+json"
    assert json.loads(record["body"]) == event
    assert record["status"] == "new" and record["history"] == []
    assert (
        failed(renewals(amqp_url, "dlq", "show", "nope"))
        == "Error: no dead letter with id nope (see `renewals dlq list --status all`)"
    )


@pytest.mark.other_brokers_slow
def test_a_dry_run_shows_the_plan_and_changes_nothing(
    client: Client, start_worker, amqp_url: str, store_url: str
) -> None:
    """--dry-run lists exactly the selected letters and their destination (the input exchange by event type; the
    x-original-* headers only with --to-original); the queue and its order are untouched."""
    produce_mixed_dead_letters(client, start_worker, store_url)
    before = dead_letters(amqp_url)
    planned = json.loads(
        ok(renewals(amqp_url, "dlq", "replay", "--reason", "no_recipient", "--dry-run", "--json")).stdout
    )
    assert [(p["id"], p["action"], p["note"]) for p in planned] == [
        ("nr-1", "replay", "renewals.events / renewal.approaching"),
        ("nr-2", "replay", "renewals.events / renewal.approaching"),
    ]
    table = ok(renewals(amqp_url, "dlq", "replay", "--all", "--dry-run")).stdout
    assert "would replay 3, skip 2; nothing was changed" in table  # no type (bad JSON), type Mystery
    assert "type 'Mystery' is not an event the worker consumes (see --to-original)" in table
    trusting = ok(renewals(amqp_url, "dlq", "replay", "--all", "--dry-run", "--to-original")).stdout
    assert "would replay 5, skip 0; nothing was changed" in trusting
    assert dead_letters(amqp_url) == before


@pytest.mark.other_brokers_slow
def test_replay_by_id_then_by_reason(client: Client, start_worker, amqp_url: str, store_url: str) -> None:
    """Replayed letters become notifications once the cause is fixed; the rest stay, in their order."""
    worker = start_worker()
    out = client.observe()
    client.publish([renewal("c1", "p-fix", id="nr-1")])
    client.publish([b"{not json"], content_type="application/json")
    client.publish([renewal("c2", "p-fix", id="nr-2"), renewal("c3", "p-fix", id="nr-3")])
    wait_for_dead_letters(client, 4, store_url)
    client.publish([owner_changed("platform", "p-fix", partner_contact=ALICE)])
    worker.wait_for("owner.changed")
    result = ok(renewals(amqp_url, "dlq", "replay", "--id", "nr-2"))
    assert "replayed 1, skipped 0, failed 0" in result.stdout
    [audit] = audit_lines(result, "dlq.replayed")
    assert (audit["ids"], audit["replayed"], audit["result"]) == (["nr-2"], 1, "completed") and audit["user"]
    assert causes(drain(client, out)) == ["nr-2"]
    assert ids(amqp_url) == ["nr-1", None, "nr-3"]
    ok(renewals(amqp_url, "dlq", "replay", "--reason", "no_recipient"))
    assert causes(drain(client, out)) == ["nr-1", "nr-3"]
    assert [row["reason"] for row in dead_letters(amqp_url)] == ["invalid_json"]


@pytest.mark.other_brokers_slow
def test_a_replayed_message_keeps_body_and_properties_and_counts_the_replay(
    client: Client, start_worker, amqp_url: str, store_url: str
) -> None:
    """The copy goes to the original exchange and key with its body, message_id and properties; only failure headers go."""
    worker = start_worker()
    body = json.dumps(renewal("c1", "p-none", id="nr-1")).encode()
    properties = pika.BasicProperties(
        content_type="application/cloudevents+json", delivery_mode=2, message_id="nr-1", correlation_id="billing-run-7",
        app_id="billing", type="RenewalApproaching", headers={"x-trace": "t-1"},
    )  # fmt: skip
    client.channel.basic_publish(EVENTS, "renewal.approaching", body, properties, mandatory=True)
    wait_for_dead_letters(client, 1, store_url)
    assert worker.stop() == 0  # nobody consumes the replayed copy: the test reads it
    ok(renewals(amqp_url, "dlq", "replay", "--id", "nr-1"))
    [(method, copy, copied_body)] = client.take(NAMES.queue, 1)
    assert (method.exchange, method.routing_key, copied_body) == (EVENTS, "renewal.approaching", body)
    for name in ("content_type", "delivery_mode", "message_id", "correlation_id", "app_id", "type"):
        assert getattr(copy, name) == getattr(properties, name), name
    headers = {k: v for k, v in copy.headers.items() if k != "x-delivery-count"}  # the quorum queue's own
    records = DeadLetterRecords(open_store(store_url))
    [letter], [operation] = records.find("nr-1"), records.operations()
    assert headers == {
        "x-trace": "t-1",
        "x-replay-count": 1,
        "x-replay-of-letter": letter.summary.id,  # the letter and the replay it comes from (issue 27)
        "x-replay-operation": operation.id,
    }
    assert dead_letters(amqp_url) == []


@pytest.mark.other_brokers_slow
def test_no_recipient_story_end_to_end(
    client: Client, start_worker, amqp_url: str, tmp_path: Path, store_url: str
) -> None:
    """Nobody to address: dead-lettered; an OwnerChanged gives the client a partner contact; the replay notifies it."""
    worker = start_worker()
    out = client.observe()
    store = {"RENEWALS_STORE_URL": f"sqlite:///{tmp_path / 'renewals.db'}"}
    client.publish([renewal("c9", "p-story", id="story-1")])
    wait_for_dead_letters(client, 1, store_url)
    before = ok(
        renewals(amqp_url, "owners", "show", "--partner", "p-story", "--client", "c9", **store)
    ).stdout
    assert "NO RECIPIENT" in before and "system_default" in before
    client.publish([owner_changed("partner", "p-story", "c9", partner_contact=BOB)])
    worker.wait_for("owner.changed")
    now = json.loads(
        ok(
            renewals(amqp_url, "owners", "show", "--partner", "p-story", "--client", "c9", "--json", **store)
        ).stdout
    )
    assert (now["owner"], now["resolved_from"], now["partner_contact"]["email"]) == (
        "partner",
        "client_override",
        BOB["email"],
    )
    assert [r["email"] for r in now["recipients"][0]["to"]] == [BOB["email"]]
    ok(renewals(amqp_url, "dlq", "replay", "--reason", "no_recipient"))
    [notification] = drain(client, out)
    data = notification["data"]
    assert (data["causation_id"], data["audience"], data["resolved_from"]) == (
        "story-1",
        "partner_contact",
        "client_override",
    )
    assert [r["email"] for r in data["to"]] == [BOB["email"]]
    assert dead_letters(amqp_url) == []


@pytest.mark.other_brokers_slow
def test_the_replay_count_guard(client: Client, start_worker, amqp_url: str, store_url: str) -> None:
    """After three replays that failed again, a fourth needs --force; the skip is reported, not silent."""
    start_worker()
    client.publish([renewal("c1", "p-none", id="nr-1")])
    wait_for_dead_letters(client, 1, store_url)
    for replays in (1, 2, 3):
        ok(renewals(amqp_url, "dlq", "replay", "--id", "nr-1"))
        wait_until(
            lambda n=replays: [r["replays"] for r in dead_letters(amqp_url)] == [n], f"replay {replays} back"
        )
    plan = json.loads(ok(renewals(amqp_url, "dlq", "replay", "--id", "nr-1", "--dry-run", "--json")).stdout)
    assert [(p["action"], p["note"]) for p in plan] == [("skip", "replayed 3 times already (see --force)")]
    result = ok(renewals(amqp_url, "dlq", "replay", "--id", "nr-1"))
    assert "replayed 0, skipped 1, failed 0" in result.stdout
    assert audit_lines(result, "dlq.replayed")[0]["skipped_ids"] == ["nr-1"]
    assert [r["replays"] for r in dead_letters(amqp_url)] == [3]
    ok(renewals(amqp_url, "dlq", "replay", "--id", "nr-1", "--force"))
    wait_until(lambda: [r["replays"] for r in dead_letters(amqp_url)] == [4], "the forced replay back")


@pytest.mark.other_brokers_slow
def test_export_then_purge(
    client: Client, start_worker, amqp_url: str, tmp_path: Path, store_url: str
) -> None:
    """Export writes the selection as JSON lines and keeps it; purge removes only the selection, only with --yes."""
    produce_mixed_dead_letters(client, start_worker, store_url)
    before = dead_letters(amqp_url)
    exported = tmp_path / "dead.jsonl"
    ok(renewals(amqp_url, "dlq", "export", "--reason", "no_recipient", "--out", str(exported)))
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [r["id"] for r in records] == ["nr-1", "nr-2"]
    assert records[0]["headers"]["x-error-reason"] == "no_recipient"
    assert records[0]["properties"]["delivery_mode"] == 2
    assert json.loads(records[0]["body"])["data"]["client_id"] == "c1"
    assert exported.stat().st_mode & 0o777 == 0o600  # whatever the umask: bodies carry personal data
    again = ["dlq", "export", "--reason", "no_recipient", "--out", str(exported)]
    assert (
        failed(renewals(amqp_url, *again))
        == f"Error: {exported} exists: choose another file, or --force to replace it"
    )
    exported.write_text("old")
    ok(renewals(amqp_url, *again, "--force"))
    assert len(exported.read_text().splitlines()) == 2
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    for extra in ((), ("--force",)):
        assert failed(renewals(amqp_url, "dlq", "export", "--limit", "1", "--out", str(link), *extra))
    assert target.read_text() == "keep me"  # never written through the link
    assert dead_letters(amqp_url) == before
    assert "nothing purged without --yes" in failed(
        renewals(amqp_url, "dlq", "purge", "--reason", "no_recipient")
    )
    result = ok(renewals(amqp_url, "dlq", "purge", "--reason", "no_recipient", "--yes"))
    assert result.stdout.strip() == "purged 2 dead letters"
    assert audit_lines(result, "dlq.purged")[0]["ids"] == ["nr-1", "nr-2"]
    assert ids(amqp_url) == [None, "oc-bad", "mys-1"]
    assert ids(amqp_url, "--status", "purged") == ["nr-1", "nr-2"]  # kept, with their history
    history = json.loads(ok(renewals(amqp_url, "dlq", "history", "nr-1", "--json")).stdout)
    assert [entry["what"] for entry in history] == ["purged"] and history[0]["by"]


@pytest.mark.other_brokers_slow
def test_an_unroutable_replay_fails_loudly_and_keeps_the_dead_letter(
    client: Client, start_worker, amqp_url: str, store_url: str
) -> None:
    """With `mandatory`, a copy nobody would receive is refused: reported, exit 1, and still first in the queue."""
    worker = start_worker()
    out = client.observe()
    client.publish([owner_changed("partner", "p-fix", id="oc-bad"), renewal("c1", "p-fix", id="nr-1")])
    wait_for_dead_letters(client, 2, store_url)
    client.publish([owner_changed("platform", "p-fix", partner_contact=ALICE)])
    worker.wait_for("owner.changed")
    client.channel.queue_unbind(NAMES.queue, EVENTS, "owner.changed")
    result = renewals(amqp_url, "dlq", "replay", "--all")
    assert failed(result) == "Error: 1 dead letters could not be replayed; they stay new"
    assert "unroutable" in result.stdout and "replayed 1, skipped 0, failed 1" in result.stdout
    assert audit_lines(result, "dlq.replayed")[0]["failed_ids"] == ["oc-bad"]
    assert causes(drain(client, out)) == ["nr-1"]
    assert ids(amqp_url) == ["oc-bad"]


@pytest.mark.other_brokers_slow
def test_a_replay_killed_half_way_loses_nothing(
    client: Client, start_worker, amqp_url: str, store_url: str
) -> None:
    """SIGKILL in the middle of a replay: every event is either notified or still new, at most one
    both; resuming the operation (once its claims' lease ran out) finishes it, each notified once."""
    count = 300
    worker = start_worker()
    out = client.observe()
    event_ids = [f"kill-{n:03}" for n in range(count)]
    client.publish([renewal(f"c{n}", "p-kill", id=event_id) for n, event_id in enumerate(event_ids)])
    wait_for_dead_letters(client, count, store_url)
    client.publish([owner_changed("platform", "p-kill", partner_contact=ALICE)])
    worker.wait_for("owner.changed")
    operation, replayed_when_killed = replay_and_kill(amqp_url, store_url, after=50)
    assert 50 <= replayed_when_killed < count
    notified = causes(drain(client, out))
    waiting = ids(amqp_url)
    assert set(notified) | set(waiting) == set(event_ids)  # nothing lost
    # At the default rate outcomes are committed one at a time: at worst the one in hand is
    # both published and still new.
    assert len(set(notified) & set(waiting)) <= 1
    assert waiting == sorted(waiting) and len(notified) >= replayed_when_killed
    resumed = _resume_when_free(amqp_url, operation)
    assert json.loads(resumed.stdout)["operation"] == operation
    notified += causes(drain(client, out))
    assert sorted(notified) == event_ids  # each exactly once: the worker's inbox absorbed any duplicate
    assert dead_letters(amqp_url) == []
    [row] = [
        r
        for r in json.loads(ok(renewals(amqp_url, "dlq", "replays", "--json")).stdout)
        if r["operation"] == operation
    ]
    assert (row["status"], row["replayed"] + row["skipped"] + row["failed"]) == ("finished", count)


def _resume_when_free(amqp_url: str, operation: str):  # type: ignore[no-untyped-def]
    """`dlq replay --resume OP`, retried while the killed process still looks alive (10 s)."""
    deadline = time.monotonic() + 30
    while True:
        result = renewals(amqp_url, "dlq", "replay", "--resume", operation, "--json")
        if result.exit_code == 0 or time.monotonic() > deadline:
            return ok(result)
        assert "running in another process" in result.stderr, result.stderr
        time.sleep(1.0)


def replay_and_kill(amqp_url: str, store_url: str, after: int) -> tuple[str, int]:
    """Run `renewals dlq replay --all` on a terminal; SIGKILL it once its progress shows `after`
    replayed. The operation's id, and how many it had replayed."""
    terminal, child_end = pty.openpty()
    env = {
        **os.environ,
        "RENEWALS_AMQP_URL": amqp_url,
        "RENEWALS_STORE_URL": store_url,
        "RENEWALS_LOG_FORMAT": "json",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "dlq", "replay", "--all", "--rate", "50"],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=child_end,
    )  # fmt: skip
    os.close(child_end)
    shown, replayed = b"", 0
    deadline = time.monotonic() + 30
    try:
        while replayed < after and time.monotonic() < deadline and process.poll() is None:
            if select.select([terminal], [], [], 0.2)[0]:
                shown += os.read(terminal, 4096)
                progress = re.findall(rb"replayed (\d+)", shown)
                replayed = int(progress[-1]) if progress else 0
        process.send_signal(signal.SIGKILL)
        assert process.wait(10) == -signal.SIGKILL, f"the replay ended on its own first:\n{shown.decode()}"
    finally:
        os.close(terminal)
    [operation] = set(re.findall(rb"replay (\w+): \d+/", shown))
    return operation.decode(), replayed


def test_a_broker_dead_letter_is_recorded_from_x_death_and_replayed(
    client: Client, start_worker, amqp_url: str, store_url: str
) -> None:
    """A message the quorum queue gave up on (delivery limit) while no worker ran waits in the
    dead-letter queue; the next worker records it as delivery_limit, and it replays to its origin."""
    limit = {"RENEWALS_DELIVERY_LIMIT": "1"}
    ok(renewals(amqp_url, "topology", "--declare", **limit))
    out = client.observe()
    client.publish([renewal("c1", None, decision_maker=DORA, id="dl-1")])
    for _ in range(2):  # delivered, refused, redelivered, refused: over the limit of 1
        method = wait_until(lambda: client.channel.basic_get(NAMES.queue)[0], "a delivery", 5)
        client.channel.basic_reject(method.delivery_tag, requeue=True)  # 4.3 counts no nack
    wait_until(lambda: client.count(DLQ) == 1, "the broker's dead letter")
    start_worker(**limit)
    wait_for_dead_letters(client, 1, store_url)
    [row] = dead_letters(amqp_url)
    assert (row["id"], row["reason"], row["exchange"], row["routing_key"]) == (
        "dl-1",
        "delivery_limit",
        EVENTS,
        "renewal.approaching",
    )
    ok(renewals(amqp_url, "dlq", "replay", "--reason", "delivery_limit"))
    assert causes(drain(client, out)) == ["dl-1"]


def test_topology_declare_creates_the_queues_on_a_fresh_vhost(amqp_url: str) -> None:
    """`renewals topology --declare` creates every exchange and queue the worker uses, with its bindings."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    plan = topology(Settings(), BrokerVersion.parse(connection._impl.server_properties["version"]))
    try:
        with pytest.raises(ChannelClosedByBroker):
            connection.channel().queue_declare(plan.queues[0].name, passive=True)
        printed = ok(renewals(amqp_url, "topology", "--declare")).stdout
        channel = connection.channel()
        for queue in plan.queues:
            assert queue.name in printed
            channel.queue_declare(queue.name, passive=True)
        for exchange in plan.exchanges:
            channel.exchange_declare(exchange.name, passive=True)
        channel.confirm_delivery()
        channel.basic_publish(EVENTS, "owner.changed", b"{}", mandatory=True)  # routed: the binding exists
        assert channel.queue_declare(Settings().queue, passive=True).method.message_count == 1
    finally:
        connection.close()


@pytest.mark.other_brokers_slow
def test_errors_are_one_line_and_a_non_zero_exit(amqp_url: str, store_url: str, tmp_path: Path) -> None:
    """No store, an older store, an unscoped replay, an unreachable broker (password masked):
    each fails in one line that names the fix."""
    missing = renewals(amqp_url, "dlq", "list")
    assert missing.exit_code == EX_REFUSED and missing.stderr.startswith("Error: no store at"), missing.stderr
    old = open_store(store_url)
    with old.transaction():
        old.execute(
            "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at_us BIGINT NOT NULL)"
        )
        old.execute("INSERT INTO schema_version VALUES (2, 'the previous release', 0)")
    older = renewals(amqp_url, "dlq", "list")
    assert older.exit_code == EX_CONFIG and "run `renewals store migrate`" in older.stderr, older.stderr
    old.execute("DROP TABLE schema_version")
    old.migrate()
    DeadLetterRecords(old).insert([new_letter(event_id="evt-1")])
    assert "give a filter" in failed(renewals(amqp_url, "dlq", "replay"))
    assert "give a filter" in failed(renewals(amqp_url, "dlq", "purge", "--yes"))
    assert "no dead letter matches --reason too_large" in failed(
        renewals(amqp_url, "dlq", "list", "--reason", "too_large")
    )
    unreachable = failed(renewals("amqp://guest:s3cret@127.0.0.1:1/", "dlq", "replay", "--all"))
    assert (
        "cannot reach the broker at amqp://guest:***@127.0.0.1:1/" in unreachable
        and "s3cret" not in unreachable
    )
    assert "resume with `renewals dlq replay --resume" in unreachable
    assert ids(amqp_url) == ["evt-1"]  # nothing was lost to the failed attempt
