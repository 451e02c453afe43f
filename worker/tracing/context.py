"""The trace context a delivery carries, read without OpenTelemetry: from its AMQP headers, and
from its envelope's CloudEvents extension attributes.

The AMQP headers win when both are there: they are the last hop's (the publisher's own send
span, or the worker's retry copy, or a replay's), where the envelope keeps the context in which
the event was created. The envelope's is then kept as a link. Either value is untrusted: one
that is not a valid traceparent is ignored, and the reason reported.
"""

from dataclasses import dataclass, field
from typing import Any

import orjson

from events import MAX_BODY_BYTES
from events.trace_context import (
    MAX_TRACESTATE_CHARS,
    TRACEPARENT,
    TRACESTATE,
    TraceParent,
    read_traceparent,
    read_tracestate,
)
from worker.messaging import Delivery


@dataclass(frozen=True, slots=True)
class Carried:
    """A delivery's trace contexts (each with its tracestate), its event id, and what was wrong."""

    header: tuple[TraceParent, str | None] | None = None
    envelope: tuple[TraceParent, str | None] | None = None
    event_id: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def parent(self) -> tuple[TraceParent, str | None] | None:
        """The context the worker continues: the header's, else the envelope's."""
        return self.header if self.header is not None else self.envelope


def carried(delivery: Delivery) -> Carried:
    """What `delivery` carries. Its body is read as JSON here only to find the event id and
    the envelope's attributes; whatever it holds, nothing is raised."""
    problems: list[str] = []
    header = _context(delivery.headers, "header", problems) if TRACEPARENT in delivery.headers else None
    document = _document(delivery.body)
    envelope = _context(document, "envelope", problems) if TRACEPARENT in document else None
    event_id = document.get("id")
    return Carried(header, envelope, event_id if isinstance(event_id, str) else None, problems)


def envelope_context(body: bytes) -> tuple[TraceParent, str | None] | None:
    """The context a message's envelope names (an outbox row's, a dead letter's), if valid."""
    document = _document(body)
    return _context(document, "envelope", []) if TRACEPARENT in document else None


def header_context(headers: dict[str, Any]) -> tuple[TraceParent, str | None] | None:
    return _context(headers, "header", []) if TRACEPARENT in headers else None


def _context(
    carrier: dict[str, Any], where: str, problems: list[str]
) -> tuple[TraceParent, str | None] | None:
    parent = read_traceparent(carrier[TRACEPARENT])
    if isinstance(parent, str):
        problems.append(f"{where} traceparent ignored: {parent}")
        return None
    state = carrier.get(TRACESTATE)
    valid_state = read_tracestate(state)
    if state is not None and valid_state is None:
        problems.append(
            f"{where} tracestate ignored: not W3C's list of at most 32 key=value members"
            f" in at most {MAX_TRACESTATE_CHARS} characters"
        )
    return parent, valid_state


def _document(body: bytes | bytearray) -> dict[str, Any]:
    if len(body) > MAX_BODY_BYTES:  # refused by the worker's parse, unread
        return {}
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:  # the worker's parse says why; tracing only looks
        return {}
    return document if isinstance(document, dict) else {}
