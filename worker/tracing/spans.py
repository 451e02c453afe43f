"""The worker's spans, after OpenTelemetry's messaging conventions for RabbitMQ.

- `process {queue}` (CONSUMER): one batch, the root of a trace of its own, since its events
  belong to as many traces. Its store calls are its children. It links to each event's
  process span, and each of those links back to it.
- `process {exchange}:{routing key}:{queue}` (CONSUMER): one event, a child of the context
  the message carries (`worker.tracing.context`: its AMQP headers, else its envelope), or a
  new trace's root if it carries none. `error.type` is the failure's reason when the event is
  retried or dead-lettered.
- `send {exchange}:{routing key}` (PRODUCER): one publish (a notification, a retry copy, a
  dead letter), a child of its event's process span; its context is what the message carries
  on in its `traceparent` / `tracestate` headers. A notification's envelope carries its
  process span's context (the context it was created in), so that it still joins the trace
  when it is republished from the outbox.

Spans end when the batch is committed and its messages are handed to the publisher; the
broker's confirms are awaited for the whole batch afterwards (`renewals_confirm_wait_seconds`).
"""

import functools
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import orjson
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)

from events import NotificationRequestedData
from events.trace_context import TRACEPARENT, TRACESTATE, TraceParent, format_traceparent
from worker import logs
from worker.messaging import Delivery, Outgoing
from worker.service.notifications import Writer
from worker.service.processing import Processor, Result
from worker.store import OutboxRow, WhileCommitting
from worker.tracing.context import carried, envelope_context

SYSTEM = "rabbitmq"
MAX_STATUS = 200


class TracedProcessor:
    """A batch processor, each batch and each of its messages in spans. `writer` is the one the
    processor writes its notifications with: it is told each batch's trace contexts."""

    def __init__(
        self, processor: Processor, writer: "TracedWriter", *, tracer: trace.Tracer, queue: str
    ) -> None:
        self._processor = processor
        self._writer = writer
        self._tracer = tracer
        self._queue = queue
        self._log = logs.get_logger("renewals.tracing")

    def process(
        self,
        deliveries: Sequence[Delivery],
        *,
        settled_key: str | None = None,
        while_committing: WhileCommitting | None = None,
    ) -> list[Result]:
        process = partial(
            self._processor.process, deliveries, settled_key=settled_key, while_committing=while_committing
        )
        return self._traced(deliveries, process)

    def process_redelivered(self, delivery: Delivery) -> list[Result]:
        return self._traced([delivery], partial(self._processor.process_redelivered, delivery))

    def flush(self) -> None:
        self._processor.flush()

    def message(self, row: OutboxRow) -> Outgoing:
        """An outbox row published again: a send span in the trace its envelope names."""
        parent = envelope_context(row.body)
        context = Context() if parent is None else _in(parent)
        return published(self._tracer, self._processor.message(row), context)

    def _traced(self, deliveries: Sequence[Delivery], run: Callable[[], list[Result]]) -> list[Result]:
        started = time.time_ns()
        batch = self._tracer.start_span(
            f"process {self._queue}",
            context=Context(),
            kind=SpanKind.CONSUMER,
            start_time=started,
            attributes={
                **operation("process"),
                "messaging.destination.name": self._queue,
                "messaging.batch.message_count": len(deliveries),
            },
        )
        to_batch = Link(batch.get_span_context())
        spans: dict[int, tuple[Span, dict[str, str]]] = {}
        created: dict[str, dict[str, str]] = {}
        for delivery in deliveries:
            span, event_id = self._start(delivery, to_batch, started)
            context = span.get_span_context()
            batch.add_link(context)
            spans[id(delivery)] = span, carrier(context)
            if event_id is not None:
                created.setdefault(event_id, spans[id(delivery)][1])
        self._writer.carriers = created
        try:
            with trace.use_span(batch, record_exception=False, set_status_on_exception=False):
                results = run()
        except BaseException as exc:  # the store went away (the batch is done again), or worse
            for span in (*(span for span, _ in spans.values()), batch):
                failed(span, type(exc).__qualname__, str(exc))
                span.end()
            raise
        finally:
            self._writer.carriers = {}
        finished = [
            self._finish(result, *spans[id(result.delivery)]) if id(result.delivery) in spans else result
            for result in results
        ]
        batch.end()
        return finished

    def _start(self, delivery: Delivery, to_batch: Link, started: int) -> tuple[Span, str | None]:
        """The event's span: what a sampler may look at given at once, the rest only if it records."""
        found = carried(delivery)
        for problem in found.problems:  # never the event's fault: it is handled as usual
            self._log.warning("trace.context_ignored", problem=problem, event_id=found.event_id)
        links = [to_batch]
        if found.header is not None and found.envelope is not None and found.envelope != found.header:
            links.append(Link(remote(found.envelope), {"renewals.trace_context": "envelope"}))
        parent = found.parent
        name, attributes = self._process_span(*delivery.origin)
        span = self._tracer.start_span(
            name,
            context=Context() if parent is None else _in(parent),
            kind=SpanKind.CONSUMER,
            links=links,
            start_time=started,
            attributes=attributes,
        )
        if span.is_recording():
            span.set_attributes(
                {
                    "messaging.rabbitmq.message.delivery_tag": delivery.delivery_tag,
                    "messaging.message.body.size": len(delivery.body),
                    "renewals.attempt": delivery.attempts + 1,
                    **_ids(delivery.properties),
                }
            )
        return span, found.event_id

    @functools.lru_cache(maxsize=64)  # noqa: B019 - one processor per worker; a handful of origins
    def _process_span(self, exchange: str, routing_key: str) -> tuple[str, dict[str, Any]]:
        where = _destination(exchange, routing_key, self._queue)
        return f"process {where['messaging.destination.name']}", {**operation("process"), **where}

    def _finish(self, result: Result, span: Span, written: dict[str, str]) -> Result:
        traceparent = written[TRACEPARENT]
        result.fields["trace_id"], result.fields["span_id"] = traceparent[3:35], traceparent[36:52]
        if not span.is_recording():  # sampled out: its context is propagated, nothing more
            if result.outgoing is not None:
                result = replace(result, outgoing=_carrying(result.outgoing, written))
            span.end()
            return result
        attributes: dict[str, Any] = {"renewals.outcome": result.outcome}
        if result.event is not None:
            attributes["cloudevents.event_id"] = result.event.id
            attributes["cloudevents.event_type"] = result.event.type
            if "message_id" not in result.delivery.properties:
                attributes["messaging.message.id"] = result.event.id
        span.set_attributes(attributes)
        if result.failure is not None:
            failed(span, result.failure.reason, result.failure.detail)
        if result.outgoing is not None:
            outgoing = published(self._tracer, result.outgoing, trace.set_span_in_context(span))
            result = replace(result, outgoing=outgoing)
        span.end()
        return result


class TracedWriter:
    """`writer`, writing into each notification's envelope the context of the event span it was
    created in (`carriers`, by event id, set by `TracedProcessor` for each batch)."""

    def __init__(self, writer: Writer) -> None:
        self._writer = writer
        self.carriers: dict[str, dict[str, str]] = {}

    def check(self, data: NotificationRequestedData) -> None:
        self._writer.check(data)

    def message(self, row: OutboxRow) -> Outgoing:
        return self._writer.message(row)

    def row(self, data: NotificationRequestedData, time_json: bytes) -> OutboxRow:
        row = self._writer.row(data, time_json)
        written = self.carriers.get(data.causation_id)
        if written is None:
            return row
        extension = orjson.dumps(written)[:-1] + b","  # `{"traceparent":"…",` then the envelope
        return replace(row, body=extension + row.body[1:])


def published(tracer: trace.Tracer, outgoing: Outgoing, parent: Context) -> Outgoing:
    """`outgoing` with the context of its send span (started and ended here) in its headers."""
    where = _destination(outgoing.exchange, outgoing.routing_key)
    span = tracer.start_span(
        f"send {where['messaging.destination.name']}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            **operation("send"),
            **where,
            "messaging.message.body.size": len(outgoing.body),
            **_ids(outgoing.properties),
        },
    )
    span.end()
    return _carrying(outgoing, carrier(span.get_span_context()))


def _carrying(outgoing: Outgoing, written: dict[str, str]) -> Outgoing:
    """`outgoing` with `written` as its trace context headers."""
    headers = dict(outgoing.properties.get("application_headers") or {})
    headers.pop(TRACESTATE, None)  # an upstream one, copied; the span's own (if any) replaces it
    headers.update(written)
    properties = {**outgoing.properties, "application_headers": headers}
    return Outgoing(outgoing.exchange, outgoing.routing_key, outgoing.body, properties)


def carrier(context: SpanContext) -> dict[str, str]:
    """`traceparent` (and `tracestate`, if any) naming `context`."""
    written = {TRACEPARENT: format_traceparent(context.trace_id, context.span_id, context.trace_flags)}
    if context.trace_state:
        written[TRACESTATE] = context.trace_state.to_header()
    return written


def failed(span: Span, error_type: str, detail: str) -> None:
    span.set_attribute("error.type", error_type)
    span.set_status(Status(StatusCode.ERROR, detail[:MAX_STATUS]))


def destination_name(exchange: str, routing_key: str, queue: str | None = None) -> str:
    """`{exchange}:{routing key}` (a publish) or `{exchange}:{routing key}:{queue}` (a
    consumer), empty parts left out, the queue too when it is the routing key; `amq.default`
    for the default exchange with nothing else."""
    parts = [part for part in (exchange, routing_key) if part]
    if queue and queue != routing_key:
        parts.append(queue)
    return ":".join(parts) or "amq.default"


def remote(parent: tuple[TraceParent, str | None]) -> SpanContext:
    traceparent, state = parent
    return SpanContext(
        traceparent.trace_id,
        traceparent.span_id,
        is_remote=True,
        trace_flags=TraceFlags(traceparent.flags & 0xFF),
        trace_state=TraceState.from_header([state]) if state else None,
    )


def operation(name: str) -> dict[str, Any]:
    """What every span of a messaging operation says (`send`, `process`)."""
    return {"messaging.system": SYSTEM, "messaging.operation.type": name, "messaging.operation.name": name}


def _in(parent: tuple[TraceParent, str | None]) -> Context:
    return trace.set_span_in_context(NonRecordingSpan(remote(parent)))


def _destination(exchange: str, routing_key: str, queue: str | None = None) -> dict[str, Any]:
    name = destination_name(exchange, routing_key, queue)
    attributes: dict[str, Any] = {"messaging.destination.name": name}
    if routing_key:
        attributes["messaging.rabbitmq.destination.routing_key"] = routing_key
    return attributes


def _ids(properties: dict[str, Any]) -> dict[str, Any]:
    ids = {}
    message_id, correlation_id = properties.get("message_id"), properties.get("correlation_id")
    if isinstance(message_id, str):
        ids["messaging.message.id"] = message_id
    if isinstance(correlation_id, str):
        ids["messaging.message.conversation_id"] = correlation_id
    return ids
