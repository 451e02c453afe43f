"""Tracing (docs/tracing.md): spans checked against OpenTelemetry's messaging conventions for
RabbitMQ with the SDK's in-memory exporter, the trace context read and written, and nothing of
OpenTelemetry loaded while tracing is off."""

import json
import logging
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import structlog
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from events import parse, parse_notification
from events.trace_context import read_traceparent, read_tracestate
from handlers import HANDLERS
from support.faults import fails_for_doomed_clients
from support.messages import contact, renewal
from worker.broker.publisher import encoded_size
from worker.dead_letters import DeadLetter
from worker.messaging import Delivery
from worker.service.notifications import NotificationWriter, Writer
from worker.service.outbox import Outbox
from worker.service.processing import BatchProcessor, Result
from worker.settings import VERSION, Settings
from worker.store import OutboxRow, open_store
from worker.tracing import TracingMisconfigured
from worker.tracing.replay import ReplayTracing
from worker.tracing.sdk import SdkLines, exporters, resource, trace_ids
from worker.tracing.spans import TracedProcessor
from worker.tracing.wrappers import Tracing

BILLING_TRACE = "0af7651916cd43dd8448eb211c80319c"
BILLING_SPAN = "b7ad6b7169203331"
BILLING = f"00-{BILLING_TRACE}-{BILLING_SPAN}-01"
OTHER = "00-11111111111111111111111111111111-2222222222222222-01"
DORA = contact("dora", "client.example")


@pytest.fixture
def exported() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def processor(tmp_path: Path, provider: TracerProvider, handlers: Any = HANDLERS) -> TracedProcessor:
    """The processor as the composition root wraps it when tracing is on, over a store whose
    statements are traced too."""
    settings = Settings(store_url=f"sqlite:///{tmp_path / 'renewals.db'}")
    tracing = Tracing(provider.get_tracer("test"), settings.queue)
    store = open_store(settings.store_url, runner=tracing.statements)
    store.migrate()
    outbox = Outbox(store, grace_s=settings.outbox_grace, sweep_every_s=settings.outbox_sweep_interval)

    def batches(writer: Writer) -> BatchProcessor:
        return BatchProcessor(
            settings, store, handlers, outbox=outbox, encoded_size=encoded_size, writer=writer
        )

    return tracing.processor(batches, NotificationWriter(settings.source, settings.notifications_exchange))


def delivery(
    message: dict[str, Any], tag: int = 1, exchange: str = "renewals.events", **headers: Any
) -> Delivery:
    properties = {"content_type": "application/json", "application_headers": headers}
    routing_key = "renewal.approaching" if exchange else "renewals.worker.retry.1000ms"
    return Delivery(json.dumps(message).encode(), properties, exchange, routing_key, tag)


def traced_renewal(client_id: str, *, envelope: str | None = None, **fields: Any) -> dict[str, Any]:
    message = renewal(client_id, **fields)
    if envelope is not None:
        message["traceparent"] = envelope
        message["tracestate"] = "billing=1"
    return message


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


def hex_ids(span: ReadableSpan) -> tuple[str, str]:
    assert span.context is not None
    return f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}"


def headers_of(result: Result) -> dict[str, Any]:
    assert result.outgoing is not None
    headers: dict[str, Any] = result.outgoing.properties["application_headers"]
    return headers


PROCESS = "process renewals.events:renewal.approaching:renewals.worker"


def test_a_batch_is_a_span_of_its_own_linked_both_ways_to_a_process_span_per_event_in_each_events_trace(
    tmp_path: Path, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """A batch of two events from two traces: the batch span is a root with a link to each
    event's process span; each process span is a CONSUMER child of the context its message
    carried (AMQP header, or envelope), links back to the batch, and has the RabbitMQ attributes."""
    provider, exporter = exported
    results = processor(tmp_path, provider).process(
        [
            delivery(traced_renewal("c1", decision_maker=DORA), 1, traceparent=BILLING),
            delivery(traced_renewal("c2", decision_maker=DORA, envelope=OTHER), 2),
        ]
    )
    spans = exporter.get_finished_spans()
    (batch,) = by_name(spans, "process renewals.worker")
    assert batch.kind is SpanKind.CONSUMER and batch.parent is None
    assert batch.attributes is not None and dict(batch.attributes) == {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": "renewals.worker",
        "messaging.batch.message_count": 2,
    }
    first, second = by_name(spans, PROCESS)
    assert [link.context for link in batch.links] == [first.context, second.context]
    for span in (first, second):
        assert span.kind is SpanKind.CONSUMER
        assert [link.context for link in span.links] == [batch.context]
    assert first.parent is not None and f"{first.parent.span_id:016x}" == BILLING_SPAN
    assert hex_ids(first)[0] == BILLING_TRACE
    assert second.parent is not None and hex_ids(second)[0] == OTHER.split("-")[1]
    assert first.attributes is not None
    assert {
        name: first.attributes.get(name)
        for name in (
            "messaging.system",
            "messaging.operation.type",
            "messaging.destination.name",
            "messaging.rabbitmq.destination.routing_key",
            "messaging.rabbitmq.message.delivery_tag",
            "messaging.message.id",
            "cloudevents.event_type",
            "renewals.outcome",
            "error.type",
        )
    } == {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.destination.name": "renewals.events:renewal.approaching:renewals.worker",
        "messaging.rabbitmq.destination.routing_key": "renewal.approaching",
        "messaging.rabbitmq.message.delivery_tag": 1,
        "messaging.message.id": results[0].event.id if results[0].event else None,
        "cloudevents.event_type": "RenewalApproaching",
        "renewals.outcome": "renewal.notification_requested",
        "error.type": None,
    }
    assert results[0].fields["trace_id"] == BILLING_TRACE
    assert results[0].fields["span_id"] == hex_ids(first)[1]


def test_a_notification_carries_its_send_spans_context_in_headers_and_its_process_spans_in_the_envelope(
    tmp_path: Path, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """The send span is a PRODUCER child of the event's process span, named and attributed as
    a publish to `{exchange}:{routing key}`; the notification's traceparent header names it, and
    its envelope's traceparent (the CloudEvents extension) names the process span."""
    provider, exporter = exported
    (result,) = processor(tmp_path, provider).process(
        [delivery(traced_renewal("c1", decision_maker=DORA), traceparent=BILLING)]
    )
    spans = exporter.get_finished_spans()
    (process,) = by_name(spans, PROCESS)
    (send,) = by_name(spans, "send renewals.notifications:notification.requested.decision_maker")
    assert send.kind is SpanKind.PRODUCER
    assert send.parent is not None and send.parent.span_id == process.context.span_id
    assert result.outgoing is not None and send.attributes is not None
    assert dict(send.attributes) == {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "renewals.notifications:notification.requested.decision_maker",
        "messaging.rabbitmq.destination.routing_key": "notification.requested.decision_maker",
        "messaging.message.body.size": len(result.outgoing.body),
        "messaging.message.id": result.outgoing.message_id,
        "messaging.message.conversation_id": result.event.id if result.event else None,
    }
    send_id = hex_ids(send)[1]
    assert headers_of(result)["traceparent"] == f"00-{BILLING_TRACE}-{send_id}-01"
    envelope = orjson.loads(result.outgoing.body)
    assert envelope["traceparent"] == f"00-{BILLING_TRACE}-{hex_ids(process)[1]}-01"
    assert parse_notification(result.outgoing.body).traceparent == envelope["traceparent"]
    assert envelope["data"]["notification_id"] == result.outgoing.message_id


def test_store_calls_are_client_spans_under_the_batch_span(
    tmp_path: Path, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """Every statement of the batch's transaction is a CLIENT span, child of the batch span,
    with db.system.name and the operation and table in its name."""
    provider, exporter = exported
    processor(tmp_path, provider).process([delivery(traced_renewal("c1", decision_maker=DORA))])
    spans = exporter.get_finished_spans()
    (batch,) = by_name(spans, "process renewals.worker")
    store = [span for span in spans if span.kind is SpanKind.CLIENT]
    names = [span.name for span in store]
    assert "INSERT inbox" in names and "INSERT outbox" in names and "COMMIT" in names, names
    for span in store:
        assert span.parent is not None and span.parent.span_id == batch.context.span_id
        assert span.attributes is not None and span.attributes["db.system.name"] == "sqlite"


def test_a_dead_letter_and_a_retry_keep_the_trace_and_their_process_span_says_error_type(
    tmp_path: Path, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """A reminder nobody can be addressed for is dead-lettered, a handler bug retried: each
    process span ends in error with error.type (the reason), and the copy's traceparent header
    is its own send span's, in the event's trace (the upstream header it copied is replaced)."""
    provider, exporter = exported
    handlers = {
        **HANDLERS,
        type(parse(json.dumps(renewal()).encode(), "application/json")): fails_for_doomed_clients,
    }
    dead, retried = processor(tmp_path, provider, handlers).process(
        [
            delivery(traced_renewal("c-nobody"), 1, traceparent=BILLING, tracestate="billing=1"),
            delivery(traced_renewal("doomed-1", decision_maker=DORA), 2, traceparent=BILLING),
        ]
    )
    assert dead.outcome == "message.dead_lettered" and retried.outcome == "message.retry_scheduled"
    spans = exporter.get_finished_spans()
    first, second = by_name(spans, PROCESS)
    assert first.attributes is not None and first.attributes["error.type"] == "no_recipient"
    assert second.attributes is not None and second.attributes["error.type"] == "bug"
    assert first.status.status_code is StatusCode.ERROR and second.status.status_code is StatusCode.ERROR
    (to_dlq,) = by_name(spans, "send renewals.worker.dlq")
    (to_retry,) = by_name(spans, "send renewals.worker.retry.1000ms")
    assert to_dlq.parent is not None and to_dlq.parent.span_id == first.context.span_id
    assert to_retry.parent is not None and to_retry.parent.span_id == second.context.span_id
    assert headers_of(dead)["traceparent"] == f"00-{BILLING_TRACE}-{hex_ids(to_dlq)[1]}-01"
    assert headers_of(dead)["tracestate"] == "billing=1"  # the span's own, inherited from its parent
    assert headers_of(retried)["traceparent"] == f"00-{BILLING_TRACE}-{hex_ids(to_retry)[1]}-01"
    assert headers_of(dead)["x-error-reason"] == "no_recipient"


def test_a_retry_copy_coming_back_continues_the_trace_from_its_send_span(
    tmp_path: Path, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """The retry copy comes back through the default exchange: its process span is a child of
    the retry's send span (the header wins), named after the original destination."""
    provider, exporter = exported
    retry_send = f"00-{BILLING_TRACE}-3333333333333333-01"
    message = traced_renewal("c1", decision_maker=DORA, envelope=BILLING)
    copy = delivery(
        message,
        exchange="",
        traceparent=retry_send,
        **{
            "x-attempts": 1,
            "x-original-exchange": "renewals.events",
            "x-original-routing-key": "renewal.approaching",
        },
    )
    processor(tmp_path, provider).process([copy])
    (span,) = by_name(exporter.get_finished_spans(), PROCESS)
    assert span.parent is not None and f"{span.parent.span_id:016x}" == "3333333333333333"
    assert span.attributes is not None and span.attributes["renewals.attempt"] == 2
    # the envelope named another span of the same trace: kept as a link
    assert [f"{link.context.span_id:016x}" for link in span.links[1:]] == [BILLING_SPAN]


@pytest.mark.parametrize(
    "where, value",
    [
        ("header", "not-a-traceparent"),
        ("header", "00-" + "0" * 32 + "-b7ad6b7169203331-01"),
        ("header", 42),
        ("envelope", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        ("envelope", BILLING + "x" * 10_000),
        ("envelope", {"nested": "object"}),
    ],
)
def test_a_malformed_traceparent_is_ignored_and_logged_and_never_fails_the_event(
    tmp_path: Path, exported: tuple[TracerProvider, InMemorySpanExporter], where: str, value: Any
) -> None:
    """The event is handled as usual, in a new trace of its own, and one warning says why the
    context was ignored."""
    provider, exporter = exported
    message = traced_renewal("c1", decision_maker=DORA)
    headers: dict[str, Any] = {}
    if where == "header":
        headers["traceparent"] = value
    else:
        message["traceparent"] = value
    with structlog.testing.capture_logs() as lines:
        (result,) = processor(tmp_path, provider).process([delivery(message, **headers)])
    assert result.outcome == "renewal.notification_requested"
    (span,) = by_name(exporter.get_finished_spans(), PROCESS)
    assert span.parent is None
    (warning,) = [line for line in lines if line["event"] == "trace.context_ignored"]
    assert warning["problem"].startswith(f"{where} traceparent ignored: ")


def test_the_envelope_attributes_are_accepted_and_a_bad_one_is_none_never_an_error() -> None:
    """events.parse takes the CloudEvents distributed-tracing attributes; malformed, they read as None."""
    good = parse(json.dumps(traced_renewal("c1", envelope=BILLING)).encode(), "application/json")
    assert (good.traceparent, good.tracestate) == (BILLING, "billing=1")
    bad = traced_renewal("c1")
    bad.update(traceparent="00-xyz", tracestate="\x1b[31m" * 1000)
    event = parse(json.dumps(bad).encode(), "application/json")
    assert (event.traceparent, event.tracestate) == (None, None)
    assert isinstance(read_traceparent("00-" + "a" * 32 + "-" + "b" * 16 + "-01-future"), str)
    assert not isinstance(read_traceparent("01-" + "a" * 32 + "-" + "b" * 16 + "-01-future"), str)


def test_an_outbox_row_republished_continues_the_trace_its_envelope_names(
    tmp_path: Path, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    """After a crash the outbox row is all there is: its send span is a child of the process
    span its envelope names."""
    provider, exporter = exported
    body = b'{"traceparent":"' + BILLING.encode() + b'","specversion":"1.0","id":"n1"}'
    row = OutboxRow("n1", "evt-1", "notification.requested.both", body, seq=1)
    outgoing = processor(tmp_path, provider).message(row)
    (send,) = by_name(
        exporter.get_finished_spans(), "send renewals.notifications:notification.requested.both"
    )
    assert send.parent is not None and f"{send.parent.span_id:016x}" == BILLING_SPAN
    assert (
        outgoing.properties["application_headers"]["traceparent"]
        == f"00-{BILLING_TRACE}-{hex_ids(send)[1]}-01"
    )


def test_a_replay_is_a_new_trace_linked_to_the_dead_letters(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """The replay's send span is a PRODUCER root of a new trace with a link to the context the
    dead letter carries; the republished copy carries the replay's own context."""
    provider, exporter = exported
    letter = DeadLetter.read(
        1,
        {"message_id": "evt-9", "headers": {"traceparent": BILLING, "x-error-reason": "no_recipient"}},
        json.dumps(renewal(id="evt-9")).encode(),
    )
    with ReplayTracing(provider)(
        letter, ("renewals.events", "renewal.approaching"), letter.replay_properties()
    ) as sent:
        pass
    (span,) = exporter.get_finished_spans()
    assert span.name == "send renewals.events:renewal.approaching" and span.kind is SpanKind.PRODUCER
    assert span.parent is None and hex_ids(span)[0] != BILLING_TRACE
    assert [(f"{link.context.trace_id:032x}", f"{link.context.span_id:016x}") for link in span.links] == [
        (BILLING_TRACE, BILLING_SPAN)
    ]
    assert span.attributes is not None and span.attributes["messaging.message.id"] == "evt-9"
    assert span.context is not None
    flags = f"{span.context.trace_flags:02x}"  # the SDK sets W3C's random flag (02) on roots
    assert sent["headers"]["traceparent"] == f"00-{hex_ids(span)[0]}-{hex_ids(span)[1]}-{flags}"
    assert sent["headers"]["x-replay-count"] == 1


def test_log_lines_inside_a_span_carry_its_trace_and_span_ids(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """The structlog processor tracing adds names the current span; outside one it adds nothing."""
    provider, _ = exported
    assert trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    with provider.get_tracer("test").start_as_current_span("work") as span:
        line = trace_ids(None, "info", {"event": "x"})
    context = span.get_span_context()
    assert line == {
        "event": "x",
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
    }


@pytest.mark.parametrize(
    "env, on",
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "renewals", "OTEL_TRACES_SAMPLER": "always_on"}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}, False),
    ],
)
def test_tracing_is_on_when_an_exporter_or_endpoint_is_set_and_the_sdk_is_not_disabled(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], on: bool
) -> None:
    """The switch, as docs/tracing.md states it."""
    for name in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SDK_DISABLED",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert Settings().tracing is on


BUILD = """
import sys
from worker import logs
from handlers import HANDLERS
from worker.app import build_services, build_worker
from worker.service.health import Health
from worker.service.metrics import Metrics
from worker.settings import VERSION, Settings
from worker.store import open_store
logs.configure("info", "json")
settings = Settings(store_url=sys.argv[1])
build_worker(settings)
loaded = sorted(name for name in sys.modules if name.split(".")[0] == "opentelemetry")
services = build_services(
    settings, open_store(sys.argv[1]), HANDLERS, metrics=Metrics("sqlite"), health=Health(1), log=logs.get_logger("t")
)
print(type(services.processor).__name__, len(loaded))
"""


@pytest.mark.parametrize(
    "env, expected", [({}, "BatchProcessor"), ({"OTEL_TRACES_EXPORTER": "console"}, "TracedProcessor")]
)
def test_with_tracing_off_building_the_worker_loads_nothing_of_opentelemetry(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    """In a fresh interpreter: off, the worker is the plain one and no opentelemetry module is
    imported; on (the control), the traced processor and the SDK."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", BUILD, f"sqlite:///{tmp_path / 'renewals.db'}"],
        env={**clean, **env, "RENEWALS_LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        check=True,
    )
    kind, loaded = result.stdout.split()
    assert kind == expected
    assert (int(loaded) == 0) is (expected == "BatchProcessor"), result.stdout


def test_a_sampled_out_event_still_passes_its_context_on_and_exports_nothing(tmp_path: Path) -> None:
    """Billing did not sample its trace (flags 00): with the parent-based sampler nothing of
    that trace is exported (the batch, a trace of its own, is sampled on its own), yet the
    notification's header and envelope carry the trace on, unsampled."""
    provider = TracerProvider()  # parentbased_always_on, as the SDK's default
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    unsampled = f"00-{BILLING_TRACE}-{BILLING_SPAN}-00"
    (result,) = processor(tmp_path, provider).process(
        [delivery(traced_renewal("c1", decision_maker=DORA), traceparent=unsampled)]
    )
    exported = exporter.get_finished_spans()
    assert [span for span in exported if hex_ids(span)[0] == BILLING_TRACE] == []
    assert {span.name for span in exported if span.kind is not SpanKind.CLIENT} == {"process renewals.worker"}
    header = headers_of(result)["traceparent"]
    assert header.startswith(f"00-{BILLING_TRACE}-") and header.endswith("-00") and BILLING_SPAN not in header
    assert result.outgoing is not None and orjson.loads(result.outgoing.body)["traceparent"] == header
    assert (result.fields["trace_id"], result.fields["span_id"]) == (BILLING_TRACE, header[36:52])


@pytest.mark.parametrize(
    "value, valid",
    [
        ("billing=1", True),
        ("tenant@vendor=x, other=y", True),
        ("", False),
        ("a=1,a=2", False),
        ("Upper=1", False),
        ("k=\x1b[31m", False),
        (",".join(f"k{n}=v" for n in range(33)), False),
        ("k=" + "v" * 600, False),
    ],
)
def test_a_tracestate_is_kept_only_when_it_follows_w3cs_grammar(value: str, valid: bool) -> None:
    """At most 32 distinct lowercase keys, printable values, 512 characters; otherwise dropped."""
    assert (read_tracestate(value) == value) is valid


def test_an_exporter_this_worker_cannot_use_is_one_line_naming_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """OTEL_TRACES_EXPORTER=zipkin stops the worker's set-up with TracingMisconfigured, which
    the worker and the CLI print as one line."""
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp,zipkin")
    with pytest.raises(TracingMisconfigured, match=r"zipkin is not one of otlp, console \(or none\)"):
        exporters(Settings())


def test_the_service_is_renewal_routing_unless_otel_service_name_says_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """service.name defaults to the app's name, OTEL_SERVICE_NAME wins; service.version is the package's."""
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert resource().attributes["service.name"] == "renewal-routing"
    assert resource().attributes["service.version"] == VERSION
    monkeypatch.setenv("OTEL_SERVICE_NAME", "renewals-eu")
    assert resource().attributes["service.name"] == "renewals-eu"


def test_the_image_and_the_test_extra_install_the_otel_extra() -> None:
    """The Docker image can trace when OTEL_* say so, and the README's test command installs the SDK."""
    root = Path(__file__).resolve().parents[2]
    assert "pip install --no-cache-dir '.[otel," in (root / "Dockerfile").read_text()  # and the console's
    extras = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert "renewal-routing[otel]" in extras["test"]
    assert {requirement.split(">=")[0] for requirement in extras["otel"]} == {
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
    }


def test_the_sdks_own_warnings_become_log_lines_with_passwords_masked() -> None:
    """An exporter that cannot reach its collector warns through `logging`; the worker writes
    it as one `tracing.sdk_problem` line, a password in a URL masked."""
    record = logging.LogRecord(
        "opentelemetry.exporter",
        logging.WARNING,
        __file__,
        1,
        "cannot reach %s",
        ("http://u:s3cret@c:4318",),
        None,
    )
    with structlog.testing.capture_logs() as lines:
        SdkLines(logging.WARNING).emit(record)
    assert lines == [
        {
            "event": "tracing.sdk_problem",
            "log_level": "warning",
            "source": "opentelemetry.exporter",
            "problem": "cannot reach http://u:***@c:4318",
        }
    ]


def test_a_worker_that_cannot_trace_as_told_exits_78_with_one_line(tmp_path: Path) -> None:
    """`renewals run` with OTEL_TRACES_EXPORTER=zipkin stops before connecting anywhere: one
    `worker.cannot_start` line naming the fix, exit status 78."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-m", "worker", "run"],
        env={
            **clean,
            "OTEL_TRACES_EXPORTER": "zipkin",
            "RENEWALS_STORE_URL": f"sqlite:///{tmp_path / 'renewals.db'}",
            "RENEWALS_LOG_FORMAT": "json",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78, result.stderr
    [line] = [json.loads(text) for text in result.stderr.splitlines() if '"worker.cannot_start"' in text]
    assert "zipkin is not one of otlp, console (or none); set it to otlp, or unset it" in line["error"]
    assert "Traceback" not in result.stderr


MISSING_SDK = """
import sys
sys.modules["opentelemetry"] = None  # as if the otel extra were not installed
from worker.settings import Settings
from worker.app import build_services
from worker.tracing import TracingMisconfigured, tracing_for
settings = Settings()
try:
    tracing_for(settings)
except TracingMisconfigured as exc:
    print(exc)
"""


def test_tracing_turned_on_without_the_otel_extra_says_what_to_install(tmp_path: Path) -> None:
    """No traceback: TracingMisconfigured, naming `pip install 'renewal-routing[otel]'` and how to turn it off."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", MISSING_SDK, f"sqlite:///{tmp_path / 'renewals.db'}"],
        env={**clean, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "OpenTelemetry is not installed (opentelemetry is missing)" in result.stdout
    assert "pip install 'renewal-routing[otel]'" in result.stdout
