"""Tracing end to end (docs/tracing.md): the real worker and broker, exporting over OTLP/HTTP to
a receiver this test runs, and `renewals dlq` commands replaying in the same trace's wake."""

import itertools
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from support.client import NAMES, Client
from support.messages import contact, owner_changed, renewal
from support.otlp_receiver import OtlpReceiver, ReceivedSpan
from support.services import BrokerUnderTest
from tests.e2e.commands import ok, renewals, wait_for_dead_letters

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here

BILLING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
BILLING_SPAN = "00f067aa0ba902b7"
BILLING = f"00-{BILLING_TRACE}-{BILLING_SPAN}-01"
DORA = contact("dora", "client.example")
PROCESS = "process renewals.events:renewal.approaching:renewals.worker"
DLQ = NAMES.dead_letter_queue


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


def tracing_to(receiver: OtlpReceiver) -> dict[str, str]:
    """The worker's environment for tracing on, exported at once to `receiver`."""
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}


def in_trace(spans: list[ReceivedSpan], trace_id: str, name: str | None = None) -> list[ReceivedSpan]:
    return [s for s in spans if s.trace_id == trace_id and (name is None or s.name == name)]


def parts(traceparent: Any) -> tuple[str, str]:
    """(trace id, span id) of a traceparent."""
    _version, trace_id, span_id, _flags = str(traceparent).split("-")
    return trace_id, span_id


def test_an_event_carrying_a_traceparent_gives_a_notification_in_the_same_trace_and_its_spans_are_exported(
    client: Client, start_worker, receiver: OtlpReceiver
) -> None:
    """Billing's traceparent in an AMQP header: the notification's traceparent header (its send
    span) and envelope (its process span) are in billing's trace; the process span is billing's
    span's child, the send span the process span's; the batch span links to the process span and
    the store calls are its children; the canonical log line names the trace."""
    worker = start_worker(**tracing_to(receiver))
    out = client.observe()
    client.publish([renewal("c1", decision_maker=DORA, id="evt-traced")], headers={"traceparent": BILLING})
    [(_method, properties, body)] = client.take(out, 1)
    header_trace, send_id = parts(properties.headers["traceparent"])
    envelope_trace, process_id = parts(json.loads(body)["traceparent"])
    assert header_trace == envelope_trace == BILLING_TRACE

    spans = receiver.wait_for(
        "the notification's send span", lambda got: any(s.span_id == send_id for s in got)
    )
    [process] = in_trace(spans, BILLING_TRACE, PROCESS)
    assert (process.kind, process.span_id, process.parent_span_id) == ("CONSUMER", process_id, BILLING_SPAN)
    assert process.service == "renewal-routing"
    assert process.attributes["messaging.system"] == "rabbitmq"
    assert process.attributes["messaging.message.id"] == "evt-traced"
    assert process.attributes["renewals.outcome"] == "renewal.notification_requested"
    [send] = [s for s in spans if s.span_id == send_id]
    assert (send.kind, send.parent_span_id, send.trace_id) == ("PRODUCER", process_id, BILLING_TRACE)
    assert send.name == "send renewals.notifications:notification.requested.decision_maker"
    assert send.attributes["messaging.message.id"] == properties.message_id
    [batch] = [
        s for s in spans if s.name == "process renewals.worker" and (BILLING_TRACE, process_id) in s.links
    ]
    assert batch.parent_span_id == "" and (batch.trace_id, batch.span_id) in process.links
    store = [s for s in spans if s.parent_span_id == batch.span_id]
    assert store and {s.kind for s in store} == {"CLIENT"}
    assert "INSERT inbox" in {s.name for s in store}
    [line] = worker.wait_for("renewal.notification_requested")
    assert (line["trace_id"], line["span_id"]) == (BILLING_TRACE, process_id)


def test_a_retried_event_continues_its_trace_and_its_dead_letter_keeps_it(
    client: Client, start_worker, receiver: OtlpReceiver, amqp_url: str, store_url: str
) -> None:
    """A handler bug, three attempts: each attempt is a process span in billing's trace, the
    second and third children of the retry copy's send span before them; the dead letter's
    traceparent header is in the trace, and `renewals dlq show` prints it."""
    start_worker(
        faults={"RenewalApproaching": "fails_for_doomed_clients"},
        RENEWALS_MAX_ATTEMPTS="3",
        **tracing_to(receiver),
    )
    client.publish(
        [renewal("doomed-1", decision_maker=DORA, id="evt-doomed")], headers={"traceparent": BILLING}
    )
    wait_for_dead_letters(client, 1, store_url)
    spans = receiver.wait_for(
        "the dead letter's send span", lambda got: in_trace(got, BILLING_TRACE, "send renewals.worker.dlq")
    )
    attempts = sorted(in_trace(spans, BILLING_TRACE, PROCESS), key=lambda s: s.attributes["renewals.attempt"])
    assert [s.attributes["renewals.attempt"] for s in attempts] == [1, 2, 3]
    assert [s.attributes["error.type"] for s in attempts] == ["bug", "bug", "retries_exhausted"]
    assert {s.status for s in attempts} == {"ERROR"}
    assert attempts[0].parent_span_id == BILLING_SPAN
    sends = {s.span_id: s for s in in_trace(spans, BILLING_TRACE) if s.kind == "PRODUCER"}
    for before, after in itertools.pairwise(attempts):
        retry = sends[after.parent_span_id]
        assert retry.name.startswith("send renewals.worker.retry.") and retry.parent_span_id == before.span_id
    [to_dlq] = in_trace(spans, BILLING_TRACE, "send renewals.worker.dlq")
    assert to_dlq.parent_span_id == attempts[2].span_id

    shown = ok(renewals(amqp_url, "dlq", "show", "evt-doomed", "--json", RENEWALS_STORE_URL=store_url)).stdout
    assert json.loads(shown)["headers"]["traceparent"] == f"00-{BILLING_TRACE}-{to_dlq.span_id}-01"
    table = ok(renewals(amqp_url, "dlq", "show", "evt-doomed", RENEWALS_STORE_URL=store_url)).stdout
    assert re.search(rf"^  traceparent +00-{BILLING_TRACE}-{to_dlq.span_id}-01$", table, re.MULTILINE), table


def test_a_dead_letter_once_replayed_is_a_new_trace_linked_back_to_its_original_trace(
    client: Client, start_worker, receiver: OtlpReceiver, amqp_url: str, store_url: str
) -> None:
    """A reminder nobody can be addressed for is dead-lettered in billing's trace; once the
    partner has a contact, `renewals dlq replay` (tracing on) sends it in a new trace whose send
    span links to the dead letter's; the worker's process span and the notification follow the
    replay's trace."""
    start_worker(**tracing_to(receiver))
    out = client.observe()
    client.publish([renewal("c-9", "p-9", id="evt-nobody")], headers={"traceparent": BILLING})
    wait_for_dead_letters(client, 1, store_url)
    client.publish([owner_changed("partner", "p-9", partner_contact=contact("alice"))])
    spans = receiver.wait_for(
        "the dead letter", lambda got: in_trace(got, BILLING_TRACE, "send renewals.worker.dlq")
    )
    [to_dlq] = in_trace(spans, BILLING_TRACE, "send renewals.worker.dlq")

    ok(
        renewals(
            amqp_url,
            "dlq",
            "replay",
            "--id",
            "evt-nobody",
            RENEWALS_STORE_URL=store_url,
            **tracing_to(receiver),
        )
    )
    [(_method, properties, _body)] = client.take(out, 1)
    replay_trace, _ = parts(properties.headers["traceparent"])
    assert replay_trace != BILLING_TRACE
    spans = receiver.wait_for("the replayed notification", lambda got: in_trace(got, replay_trace, PROCESS))
    [replay] = in_trace(spans, replay_trace, "send renewals.events:renewal.approaching")
    assert (replay.kind, replay.parent_span_id) == ("PRODUCER", "")
    assert replay.links == [(BILLING_TRACE, to_dlq.span_id)]
    assert replay.attributes["renewals.replay_count"] == 1
    [process] = in_trace(spans, replay_trace, PROCESS)
    assert process.parent_span_id == replay.span_id
    assert process.attributes["renewals.outcome"] == "renewal.notification_requested"
    assert client.count(DLQ) == 0


def test_the_trace_tree_tool_prints_a_reminders_trace_as_the_readme_shows_it(
    rabbitmq: BrokerUnderTest,
) -> None:
    """`python -m support.trace_tree`: billing's trace with the process and send spans, then the
    batch's own trace with its store calls, linked to the process span."""
    result = subprocess.run(
        [sys.executable, "-m", "support.trace_tree", "--broker", rabbitmq.url],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    lines = result.stdout.splitlines()
    canonical = next(line for line in lines if line.startswith("canonical log line"))
    process_id = canonical.rsplit("span_id ", 1)[1]
    tree = lines[lines.index("") + 1 :]
    assert tree[0] == f"trace {BILLING_TRACE} (parent: {BILLING_SPAN}, not exported here)"
    assert tree[1].startswith(f"{PROCESS}  CONSUMER  span {process_id}")
    assert tree[2].startswith(
        "└─ send renewals.notifications:notification.requested.decision_maker  PRODUCER"
    )
    assert tree[3].startswith("trace ") and tree[4].startswith("process renewals.worker  CONSUMER")
    assert tree[4].endswith(f"links: {BILLING_TRACE[:8]}…/{process_id}")
    assert "├─ INSERT inbox  CLIENT" in "\n".join(tree[5:]) and tree[-1].startswith("└─ COMMIT  CLIENT")
