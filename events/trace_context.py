"""W3C Trace Context (`traceparent`, `tracestate`) as the wire carries it: in AMQP headers, or
as the CloudEvents distributed-tracing extension attributes of the envelope.

A message's trace context is untrusted input that never decides its fate: a value that is not
a well-formed `traceparent` is reported (`read_traceparent` says why) and ignored, never a
reason to dead-letter the event.
"""

import re
from dataclasses import dataclass

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
MAX_TRACEPARENT_CHARS = 256
"""A version-00 traceparent is 55 characters; later versions may append fields, within this."""
MAX_TRACESTATE_CHARS = 512
"""What W3C asks every vendor to propagate at least; a longer tracestate is dropped whole."""

TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"
"""What the worker writes (version 00), and what the contract documents."""
TRACESTATE_PATTERN = r"^[\x20-\x7e]*$"
"""Printable ASCII: list members `key=value` separated by commas (W3C limits them further)."""

# Version, trace id, parent (span) id, flags; a later version may carry more after a "-".
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x21-\x7e]*)?")
# W3C's list member: a key (simple, or tenant@system) "=" a value of printable ASCII without
# "," or "=", not ending in a space.
_MEMBER = re.compile(
    r"(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})"
    r"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
)
MAX_TRACESTATE_MEMBERS = 32


@dataclass(frozen=True, slots=True)
class TraceParent:
    """A valid `traceparent`: the caller's trace, its span, and the sampled flag among `flags`."""

    trace_id: int
    span_id: int
    flags: int

    def header(self) -> str:
        return format_traceparent(self.trace_id, self.span_id, self.flags)


def read_traceparent(value: object) -> TraceParent | str:
    """The trace context `value` names, or a short reason why it is not a valid traceparent."""
    if not isinstance(value, str):
        return f"not a string but {type(value).__name__}"
    if len(value) > MAX_TRACEPARENT_CHARS:
        return f"{len(value)} characters, more than {MAX_TRACEPARENT_CHARS}"
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return "not version-traceid-parentid-flags in lowercase hex"
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff":
        return "version ff is invalid"
    if version == "00" and rest:
        return "version 00 has nothing after the flags"
    if int(trace_id, 16) == 0 or int(span_id, 16) == 0:
        return "an all-zero trace id or parent id is invalid"
    return TraceParent(int(trace_id, 16), int(span_id, 16), int(flags, 16))


def read_tracestate(value: object) -> str | None:
    """`value` if it is a valid tracestate (W3C's grammar: at most 32 `key=value` members, each
    key once) within MAX_TRACESTATE_CHARS, else None."""
    if not isinstance(value, str) or len(value) > MAX_TRACESTATE_CHARS:
        return None
    members = [member.strip(" \t") for member in value.split(",")]
    members = [member for member in members if member]
    keys = {member.split("=", 1)[0] for member in members}
    if not members or len(members) > MAX_TRACESTATE_MEMBERS or len(keys) != len(members):
        return None
    if not all(_MEMBER.fullmatch(member) for member in members):
        return None
    return value


def format_traceparent(trace_id: int, span_id: int, flags: int) -> str:
    return "00-%032x-%016x-%02x" % (trace_id, span_id, flags)  # noqa: UP031 - the fastest spelling
