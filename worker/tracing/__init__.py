"""OpenTelemetry traces, from the event billing sent to the notification (docs/tracing.md).

Off unless OpenTelemetry's own variables turn it on (`Settings.tracing`); off, nothing of
OpenTelemetry is imported and the worker runs exactly as it does without this package. This
module imports none of it: `worker.tracing.spans` and the modules it imports are loaded only
through the functions below, once tracing is on.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from worker.settings import Settings

if TYPE_CHECKING:
    from worker.tracing.replay import ReplayTracing
    from worker.tracing.wrappers import Tracing


class TracingMisconfigured(Exception):
    """An OTEL_* variable names something this worker cannot do (an unknown exporter)."""


def tracing_for(settings: Settings) -> "Tracing | None":
    """What the composition root wraps the processor and the store's statements in when
    tracing is on; None (and nothing of OpenTelemetry imported) when it is off."""
    if not settings.tracing:
        return None
    with _sdk_installed():
        from worker.tracing.sdk import tracer
        from worker.tracing.wrappers import Tracing

    return Tracing(tracer(settings), settings.queue)


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
