"""Store calls as client spans, children of the batch span they are made in.

Only a statement run inside a recording span gets a span of its own: housekeeping between
batches (pruning, the outbox sweep) and batches the sampler left out cost nothing more.
"""

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from worker.store.backend import DriverConnection
from worker.store.connection import DIRECT, StatementRunner
from worker.tracing.spans import failed

# The table a statement works on: the one it writes, else the one it joins a VALUES list to,
# else the one it reads.
_TARGETS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (r"\b(?:INTO|UPDATE|TABLE)\s+(\w+)", r"\bJOIN\s+(\w+)", r"\bFROM\s+(\w+)")
)


class TracedStatements:
    """A store's statements (`worker.store.connection.StatementRunner`), each in a client span when it is
    run inside a recording span; `system` is the store's kind ("sqlite" or "postgresql", as
    db.system.name spells them). Chosen when the worker's store is built (`worker.app.worker_store`)."""

    def __init__(self, tracer: trace.Tracer, system: str, runner: StatementRunner = DIRECT) -> None:
        self._tracer = tracer
        self._system = system
        self._runner = runner

    def execute(self, connection: DriverConnection, statement: str, params: Sequence[Any]) -> Any:
        if not trace.get_current_span().is_recording():
            return self._runner.execute(connection, statement, params)
        with _span(self._tracer, self._system, statement):
            return self._runner.execute(connection, statement, params)

    def execute_many(
        self, connection: DriverConnection, statement: str, rows: Iterable[Sequence[Any]]
    ) -> None:
        if not trace.get_current_span().is_recording():
            return self._runner.execute_many(connection, statement, rows)
        with _span(self._tracer, self._system, statement):
            return self._runner.execute_many(connection, statement, rows)


@contextmanager
def _span(tracer: trace.Tracer, system: str, statement: str) -> Iterator[None]:
    operation, collection = summary(statement)
    attributes = {"db.system.name": system, "db.operation.name": operation}
    if collection:
        attributes["db.collection.name"] = collection
    span = tracer.start_span(
        f"{operation} {collection}" if collection else operation, kind=SpanKind.CLIENT, attributes=attributes
    )
    try:
        yield
    except Exception as exc:
        failed(span, type(exc).__qualname__, str(exc))
        raise
    finally:
        span.end()


def summary(statement: str) -> tuple[str, str | None]:
    """The statement's operation (its first word) and the table it works on, if one is named."""
    words = statement.split(None, 1)
    operation = words[0].upper() if words else "SQL"
    for target in _TARGETS:
        found = target.search(statement)
        if found is not None:
            return operation, found.group(1)
    return operation, None
