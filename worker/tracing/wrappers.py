"""Tracing's wrappers, as the composition root takes them once tracing is on
(`worker.tracing.tracing_for`): the batch processor in spans (`spans.TracedProcessor`), its
notifications carrying their trace context (`spans.TracedWriter`), and a store's statements in
client spans (`store.TracedStatements`). Each wraps an interface; nothing is patched."""

from collections.abc import Callable

from opentelemetry import trace

from worker.service.notifications import Writer
from worker.service.processing import Processor
from worker.store.connection import StatementRunner
from worker.tracing.spans import TracedProcessor, TracedWriter
from worker.tracing.store import TracedStatements


class Tracing:
    """What tracing wraps, once it is on (`worker.tracing.tracing_for`): the batch processor and
    the store's statements. The composition root chooses it; nothing is patched."""

    def __init__(self, tracer: trace.Tracer, queue: str) -> None:
        self._tracer = tracer
        self._queue = queue

    def processor(self, make: Callable[[Writer], Processor], writer: Writer) -> "TracedProcessor":
        """The processor `make` builds over a writer that traces `writer`, in spans."""
        traced = TracedWriter(writer)
        return TracedProcessor(make(traced), traced, tracer=self._tracer, queue=self._queue)

    def statements(self, kind: str) -> StatementRunner:
        """A store's statements in client spans (`worker.store.connection.RunnerFor`)."""
        return TracedStatements(self._tracer, kind)
