"""OpenTelemetry traces, from the event billing sent to the notification (docs/tracing.md).

Off unless OpenTelemetry's own variables turn it on (`Settings.tracing`); off, nothing of
OpenTelemetry is imported and the worker runs exactly as it does without this package. This
module imports none of it: `worker.tracing.spans` and the modules it imports are loaded only
through the functions below, once tracing is on.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from handlers import HANDLERS, HandlerMap
from worker.messaging import EncodedSize
from worker.service.outbox import Outbox
from worker.service.processing import BatchProcessor
from worker.settings import Settings
from worker.store import SqlStore

if TYPE_CHECKING:
    from worker.tracing.replay import ReplayTracing


class TracingMisconfigured(Exception):
    """An OTEL_* variable names something this worker cannot do (an unknown exporter)."""


def processor_for(
    settings: Settings,
    store: SqlStore,
    handlers: HandlerMap = HANDLERS,
    *,
    outbox: Outbox,
    encoded_size: EncodedSize,
    on_conflict: Callable[[], None] = lambda: None,
) -> BatchProcessor:
    """The batch processor: traced (its store calls too: `store` itself is instrumented) when
    tracing is on, the plain one otherwise."""
    if not settings.tracing:
        return BatchProcessor(
            settings, store, handlers, outbox=outbox, encoded_size=encoded_size, on_conflict=on_conflict
        )
    with _sdk_installed():
        from worker.tracing.sdk import tracer
        from worker.tracing.spans import TracedProcessor
        from worker.tracing.store import traced

    spans = tracer(settings)
    return TracedProcessor(
        settings,
        traced(store, spans),
        handlers,
        outbox=outbox,
        encoded_size=encoded_size,
        on_conflict=on_conflict,
        tracer=spans,
    )


def replay_tracing(settings: Settings) -> "ReplayTracing | None":
    """What `renewals dlq replay` wraps each republish in when tracing is on (else None)."""
    if not settings.tracing:
        return None
    with _sdk_installed():
        from worker.tracing.replay import ReplayTracing
        from worker.tracing.sdk import provider

    return ReplayTracing(provider(settings))


@contextmanager
def _sdk_installed() -> Iterator[None]:
    try:
        yield
    except ImportError as exc:
        raise TracingMisconfigured(
            f"OTEL_* variables turn tracing on, but OpenTelemetry is not installed ({exc.name} is"
            " missing): pip install 'renewal-routing[otel]', or unset OTEL_TRACES_EXPORTER and"
            " OTEL_EXPORTER_OTLP_ENDPOINT (or set OTEL_SDK_DISABLED=true)"
        ) from None
