"""Store calls as client spans, children of the batch span they are made in.

Only a statement run inside a recording span gets a span of its own: housekeeping between
batches (pruning, the outbox sweep) and batches the sampler left out cost nothing more.
"""

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanKind

from worker.store import SqlStore
from worker.tracing.spans import failed

# The table a statement works on: the one it writes, else the one it joins a VALUES list to,
# else the one it reads.
_TARGETS = tuple(
    re.compile(pattern, re.IGNORECASE)
    for pattern in (r"\b(?:INTO|UPDATE|TABLE)\s+(\w+)", r"\bJOIN\s+(\w+)", r"\bFROM\s+(\w+)")
)


def traced(store: SqlStore, tracer: trace.Tracer) -> SqlStore:
    """`store`, its statements in spans. Its `execute` and `execute_many` are replaced on this
    one object, which every transaction of the store calls them through."""
    execute, execute_many = store.execute, store.execute_many
    system = store.kind  # "sqlite" or "postgresql", as db.system.name spells them

    def traced_execute(statement: str, params: Sequence[Any] = ()) -> Any:
        if not trace.get_current_span().is_recording():
            return execute(statement, params)
        with _span(tracer, system, statement):
            return execute(statement, params)

    def traced_execute_many(statement: str, rows: Iterable[Sequence[Any]]) -> None:
        if not trace.get_current_span().is_recording():
            return execute_many(statement, rows)
        with _span(tracer, system, statement):
            return execute_many(statement, rows)

    replacements: dict[str, Callable[..., Any]] = {
        "execute": traced_execute,
        "execute_many": traced_execute_many,
    }
    vars(store).update(replacements)  # instance attributes shadow the methods
    return store


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
