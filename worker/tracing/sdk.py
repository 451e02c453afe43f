"""The OpenTelemetry SDK, configured from OpenTelemetry's own environment variables.

Imported only when tracing is on. The SDK itself reads OTEL_SERVICE_NAME and
OTEL_RESOURCE_ATTRIBUTES (the resource), OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG (the
sampler), OTEL_EXPORTER_OTLP_* (the OTLP/HTTP exporter) and OTEL_BSP_* (the batching of
exports); this module picks the exporters OTEL_TRACES_EXPORTER names and puts the current
span's ids on every log line.
"""

import functools
import logging
from collections.abc import MutableMapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from worker import logs
from worker.messaging import APP_ID
from worker.redaction import masked
from worker.settings import VERSION, Settings
from worker.tracing import TracingMisconfigured

EXPORTERS = ("otlp", "console")
"""What OTEL_TRACES_EXPORTER may name (comma-separated); `otlp` is OTLP over HTTP/protobuf."""


def tracer(settings: Settings) -> trace.Tracer:
    return provider(settings).get_tracer(APP_ID, VERSION)


@functools.cache
def provider(settings: Settings) -> TracerProvider:
    """Set up once per process: a provider exporting in the background (what is left flushed
    at exit), and trace ids on every log line."""
    made = TracerProvider(resource=resource())  # the sampler: OTEL_TRACES_SAMPLER(_ARG)
    for exporter in exporters(settings):
        made.add_span_processor(BatchSpanProcessor(exporter))
    logs.include(trace_ids)
    sdk_log = logging.getLogger("opentelemetry")
    sdk_log.addHandler(SdkLines(logging.WARNING))  # an unreachable collector, a full span queue...
    sdk_log.propagate = False
    return made


def exporters(settings: Settings) -> list[SpanExporter]:
    names = [name.strip().lower() for name in (settings.otel_traces_exporter or "otlp").split(",")]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise TracingMisconfigured(
            f"OTEL_TRACES_EXPORTER={settings.otel_traces_exporter!r}: {', '.join(unknown)} is not one of"
            f" {', '.join(EXPORTERS)} (or none); set it to otlp, or unset it"
        )
    chosen: list[SpanExporter] = []
    if "otlp" in names:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        chosen.append(OTLPSpanExporter())  # its endpoint, headers, timeout: OTEL_EXPORTER_OTLP_*
    if "console" in names:
        chosen.append(ConsoleSpanExporter())
    return chosen


def resource() -> Resource:
    """The SDK's resource (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES), `renewal-routing` by default."""
    detected = Resource.create({SERVICE_VERSION: VERSION})
    if str(detected.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        return detected.merge(Resource({SERVICE_NAME: APP_ID}))  # OTEL_SERVICE_NAME unset
    return detected


class SdkLines(logging.Handler):
    """The SDK's own warnings (it logs with `logging`) as the worker's log lines, not raw text."""

    def emit(self, record: logging.LogRecord) -> None:
        logs.get_logger("renewals.tracing").warning(
            "tracing.sdk_problem", source=record.name, problem=masked(record.getMessage())[:500]
        )


def trace_ids(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: a line written inside a span carries its trace and span ids."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid and "trace_id" not in event:
        event["trace_id"] = f"{context.trace_id:032x}"
        event["span_id"] = f"{context.span_id:016x}"
    return event
