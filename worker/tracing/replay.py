"""A replay of a dead letter as a span: a new trace (the replay is an operator's act, not a
step of the original flow), linked to the trace the dead letter carries."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Link, SpanKind

from events.trace_context import TRACESTATE
from worker.dead_letters.letter import DeadLetter
from worker.messaging import APP_ID
from worker.settings import VERSION
from worker.tracing.context import envelope_context, header_context
from worker.tracing.spans import carrier, destination_name, failed, operation, remote


class ReplayTracing:
    def __init__(self, provider: TracerProvider) -> None:
        self._provider = provider
        self._tracer = provider.get_tracer(APP_ID, VERSION)

    def flush(self) -> None:
        """Export the spans now (a command ends soon after; it does not wait for the next batch)."""
        self._provider.force_flush()

    @contextmanager
    def __call__(
        self, letter: DeadLetter, to: tuple[str, str], properties: dict[str, Any]
    ) -> Iterator[dict[str, Any]]:
        """A `send` span around republishing `letter`; yields `properties` carrying its context."""
        original = header_context(letter.headers) or envelope_context(letter.body)
        links = [] if original is None else [Link(remote(original), {"renewals.replay_of": "dead letter"})]
        exchange, routing_key = to
        attributes: dict[str, Any] = {
            **operation("send"),
            "messaging.destination.name": destination_name(exchange, routing_key),
            "messaging.rabbitmq.destination.routing_key": routing_key,
            "messaging.message.body.size": len(letter.body),
            "renewals.replay_count": letter.replay_count + 1,
        }
        if letter.id is not None:
            attributes["messaging.message.id"] = letter.id
        span = self._tracer.start_span(
            f"send {attributes['messaging.destination.name']}",
            context=Context(),
            kind=SpanKind.PRODUCER,
            links=links,
            attributes=attributes,
        )
        headers = dict(properties.get("headers", {}))
        headers.pop(TRACESTATE, None)  # the original's, if any; the span's own (if any) replaces it
        headers.update(carrier(span.get_span_context()))
        try:
            yield {**properties, "headers": headers}
        except BaseException as exc:
            failed(span, type(exc).__qualname__, str(exc))
            raise
        finally:
            span.end()
