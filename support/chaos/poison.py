"""The bad inputs of the stream: one maker per class of docs/domain.md's reasons table and of the
hostile-input issue (bad AMQP properties, compression, deep nesting, forged origin headers).

Each maker gets a unique marker and returns the message with the reason its dead letter must
carry. The marker is in every body, so a dead letter is recognised by its body alone (the
worker keeps the body unchanged); bodies that would be valid events are ones the worker would
otherwise notify for, so a bad input let through shows up as an unexpected notification.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from struct import pack
from typing import Any

from support.client import NAMES
from support.raw import Field, table

JSON = "application/json"
EVENTS = "renewal.approaching"


@dataclass(frozen=True)
class Poison:
    reason: str
    body: bytes
    properties: dict[str, Any] = field(default_factory=dict)
    raw_headers: bytes | None = None
    routing_key: str = EVENTS
    forged_origin: bool = False
    """Carries `x-original-*` headers naming the output: its dead letter must name the input."""


def _event(marker: str, **data: Any) -> dict[str, Any]:
    """A reminder for a direct customer with a decision maker: valid, and would be notified."""
    fields: dict[str, Any] = {
        "partner_id": None,
        "client_id": f"client-{marker}",
        "renewal_date": "2031-03-01",
        "days_until_renewal": 30,
        "decision_maker": {"email": f"{marker}@client.example", "name": "Mallory"},
    }
    return {
        "specversion": "1.0",
        "id": marker,
        "source": "urn:billing:chaos",
        "type": "RenewalApproaching",
        "time": "2026-01-05T10:00:00+00:00",
        "data": fields | data,
    }


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _with(reason: str, body: bytes, routing_key: str = EVENTS, **properties: Any) -> Poison:
    return Poison(
        reason, body, {"content_type": JSON, "delivery_mode": 2, **properties}, routing_key=routing_key
    )


MAKERS: dict[str, Callable[[str], Poison]] = {
    "property not UTF-8": lambda m: _with("invalid_properties", _json(_event(m)), message_id=b"\xff\xfe"),
    "timestamp header 2^63": lambda m: Poison(
        "invalid_properties",
        _json(_event(m)),
        {"content_type": JSON, "delivery_mode": 2},
        raw_headers=table({"sent-at": Field(b"T", pack(">Q", 2**63))}),
    ),
    "compression header": lambda m: _with(
        "unsupported_content_encoding", _json(_event(m)), application_headers={"compression": "bzip2"}
    ),
    "gzip content encoding": lambda m: _with(
        "unsupported_content_encoding", _json(_event(m)), content_encoding="gzip"
    ),
    "text/plain": lambda m: _with("unsupported_content_type", _json(_event(m)), content_type="text/plain"),
    "no content type": lambda m: Poison("unsupported_content_type", _json(_event(m)), {"delivery_mode": 2}),
    "truncated JSON": lambda m: _with("invalid_json", _json(_event(m))[:-7]),
    "nested 1000 deep": lambda m: _with("invalid_json", b"[" * 1000 + _json(m) + b"]" * 1000),
    "nested inside an envelope": lambda m: _with(
        "invalid_json",
        _json(_event(m)).replace(b'"data": {', b'"x": ' + b"[" * 600 + b"]" * 600 + b', "data": {'),
    ),
    "old specversion": lambda m: _with("invalid_envelope", _json(_event(m) | {"specversion": "0.3"})),
    "time far ahead": lambda m: _with(
        "invalid_envelope", _json(_event(m) | {"time": "2999-01-01T00:00:00Z"})
    ),
    "unknown type": lambda m: _with("unknown_event_type", _json(_event(m) | {"type": "InvoicePaid"})),
    "forged notification": lambda m: Poison(
        "unknown_event_type",
        _json(_event(m) | {"type": "NotificationRequested"}),
        {
            "content_type": JSON,
            "delivery_mode": 2,
            "message_id": m,
            "app_id": "renewal-routing",
            "application_headers": {
                "x-original-exchange": NAMES.notifications_exchange,
                "x-original-routing-key": "notification.requested.both",
                "x-error-reason": "forged",
                "x-attempts": 99,
            },
        },
        forged_origin=True,
    ),
    "partner owner without contact": lambda m: _with(
        "invalid_payload",
        _json(_event(m) | {"type": "OwnerChanged", "data": {"partner_id": f"p-{m}", "owner": "partner"}}),
        routing_key="owner.changed",
    ),
    "days 2^63": lambda m: _with("invalid_payload", _json(_event(m, days_until_renewal=2**63))),
    "control character in an id": lambda m: _with(
        "invalid_payload", _json(_event(m, client_id=f"c\x1b[2J{m}"))
    ),
}
"""Every class of bad input, by what it is; the stream takes a share of each."""


def too_large(marker: str) -> Poison:
    """Over 256 KiB: sent rarely, a few hundred kilobytes each."""
    return _with("too_large", _json(_event(marker) | {"padding": "x" * 300_000}))


def poisons(
    count: int, pick: Callable[[list[str]], str], marker: Callable[[], str]
) -> list[tuple[str, str, Poison]]:
    """`count` bad inputs as (class, marker, message): at least one of every class, and one
    `too large` per 250 or so."""
    kinds = list(MAKERS)
    chosen = kinds + ["too large"] * max(1, count // 250)
    chosen += [pick(kinds) for _ in range(count - len(chosen))]
    made = []
    for kind in chosen:
        mark = marker()
        made.append((kind, mark, too_large(mark) if kind == "too large" else MAKERS[kind](mark)))
    return made
