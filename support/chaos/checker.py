"""The checker: everything that came out of a run against what the stream says should have.

- `lost`: a reminder without a notification, a bad input without its dead letter;
- `duplicated`: a reminder notified under two ids, or one notification id with two contents;
- `unexpected`: a notification for an event that should have none, or with other recipients
  (or any other field) than the rules give, or not persistent; a dead letter with another
  reason than expected, for a message that should not be one, naming a forged origin, or not
  persistent; a message left in a work queue; a worker that exited by itself or did not stop
  cleanly.

`copies` (the same notification, or the same dead letter, delivered again) are counted but
allowed: delivery is at least once, and consumers deduplicate on `message_id`.
"""

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, get_args

from support.chaos.observe import Received
from support.chaos.rules import notification_id
from support.chaos.stream import Stream
from support.client import NAMES
from worker.service.failures import DeadLetterReason

# Every reason a dead letter can carry: the worker's own, then the broker's (a message that
# reached the quorum queue's delivery limit).
REASONS = (*get_args(DeadLetterReason), "delivery_limit")


@dataclass
class Row:
    check: str
    expected: int = 0
    got: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    copies: int = 0


@dataclass
class Verdict:
    rows: list[Row]
    examples: list[str] = field(default_factory=list)

    @property
    def failures(self) -> int:
        return sum(row.lost + row.duplicated + row.unexpected for row in self.rows)

    @property
    def ok(self) -> bool:
        return self.failures == 0

    def table(self) -> str:
        columns = ("check", "expected", "got", "lost", "duplicated", "unexpected", "copies")
        cells = [columns, *([str(getattr(row, name)) for name in columns] for row in self.rows)]
        lines = [list(line) for line in cells]
        widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
        out = []
        for number, line in enumerate(lines):
            out.append(
                "  ".join(
                    c.ljust(w) if i == 0 else c.rjust(w)
                    for i, (c, w) in enumerate(zip(line, widths, strict=True))
                )
            )
            if number == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)


def check(
    stream: Stream,
    notifications: list[Received],
    dead_letters: list[Received],
    left: dict[str, int],
    problems: dict[str, int] | None = None,
) -> Verdict:
    """`left`: messages still in each work queue; `problems`: other things that must not happen
    (workers exiting by themselves, say), by name, each counted as unexpected."""
    examples: list[str] = []
    rows = [_notifications(stream, notifications, examples)]
    rows += _dead_letters(stream, dead_letters, examples)
    rows.append(Row("messages left in work queues", 0, sum(left.values()), unexpected=sum(left.values())))
    if sum(left.values()):
        examples.append(f"left in queues: {left}")
    rows += [Row(name, 0, count, unexpected=count) for name, count in (problems or {}).items()]
    return Verdict(rows, examples[:20])


def _notifications(stream: Stream, received: list[Received], examples: list[str]) -> Row:
    group_of = {event_id: n for n, reminder in enumerate(stream.reminders) for event_id in reminder.event_ids}
    contents: dict[str, set[str]] = defaultdict(set)  # notification id -> distinct bodies
    ids_per_group: dict[int, set[str]] = defaultdict(set)
    row = Row("notifications", expected=len(stream.reminders))
    wrong: set[str] = set()
    for message in received:
        document = json.loads(message.body)
        data = document["data"]
        cause, nid = data.get("causation_id"), message.message_id or ""
        contents[nid].add(json.dumps(document, sort_keys=True))
        if cause not in group_of:
            wrong.add(nid)
            examples.append(f"notification {nid} for {cause!r}, which should have none")
            continue
        group = group_of[cause]
        ids_per_group[group].add(nid)
        problems = _differences(stream.reminders[group].data, data, cause, message)
        if problems and nid not in wrong:
            wrong.add(nid)
            examples.append(f"notification {nid} for {cause}: {'; '.join(problems)}")
    row.got = len(contents)
    row.copies = len(received) - sum(len(bodies) for bodies in contents.values())
    row.lost = sum(1 for n in range(len(stream.reminders)) if not ids_per_group[n])
    two_ids = [ids for ids in ids_per_group.values() if len(ids) > 1]
    two_contents = [nid for nid, bodies in contents.items() if len(bodies) > 1]
    row.duplicated = len(two_ids) + len(two_contents)
    row.unexpected = len(wrong)
    examples += [f"one reminder under two ids: {sorted(ids)}" for ids in two_ids[:5]]
    examples += [f"notification {nid} with two contents" for nid in two_contents[:5]]
    lost = [sorted(r.event_ids) for n, r in enumerate(stream.reminders) if not ids_per_group[n]]
    examples += [f"no notification for {ids}" for ids in lost[:5]]
    return row


def _differences(expected: dict[str, Any], data: dict[str, Any], cause: str, message: Received) -> list[str]:
    problems = [
        f"{name}: {data.get(name)!r}, expected {value!r}"
        for name, value in expected.items()
        if data.get(name) != value
    ]
    wanted = notification_id(expected["client_id"], expected["renewal_date"], expected["days_until_renewal"])
    if data.get("notification_id") != wanted or message.message_id != wanted:
        problems.append(f"id {message.message_id}, expected {wanted}")
    if message.correlation_id != cause:
        problems.append(f"correlation_id {message.correlation_id!r}")
    if not message.persistent:
        problems.append("not persistent")
    if message.routing_key != f"notification.requested.{data.get('audience')}":
        problems.append(f"routing key {message.routing_key}")
    return problems


def _dead_letters(stream: Stream, received: list[Received], examples: list[str]) -> list[Row]:
    expected_by_reason = Counter(expected.reason for expected in stream.dead_letters.values())
    rows = {reason: Row(f"dead letters: {reason}", expected=expected_by_reason[reason]) for reason in REASONS}
    found: dict[bytes, int] = Counter()
    for message in received:
        reason = _reason(message.headers)
        row = rows.setdefault(reason, Row(f"dead letters: {reason}"))
        expected = stream.dead_letters.get(message.body)
        if expected is None or expected.reason != reason:
            row.unexpected += 1
            what = (
                "a message that should be none"
                if expected is None
                else f"{expected.kind} ({expected.reason})"
            )
            examples.append(f"dead letter {reason} for {what}: {message.body[:120]!r}")
            continue
        origin = message.headers.get("x-original-exchange")
        if expected.forged_origin and origin != NAMES.events_exchange:
            row.unexpected += 1
            examples.append(f"dead letter of {expected.label} names the origin {origin!r}")
        elif not message.persistent:
            row.unexpected += 1
            examples.append(f"dead letter of {expected.label} is not persistent")
        found[message.body] += 1
        if found[message.body] == 1:
            row.got += 1
        else:
            row.copies += 1
    for body, expected in stream.dead_letters.items():
        if not found[body]:
            rows[expected.reason].lost += 1
            examples.append(f"no dead letter for {expected.label} ({expected.kind}, {expected.reason})")
    return [row for row in rows.values() if row.expected or row.got or row.unexpected]


def _reason(headers: dict[str, Any]) -> str:
    reason = headers.get("x-error-reason")
    if isinstance(reason, bytes):
        reason = reason.decode(errors="replace")
    if isinstance(reason, str):
        return reason
    return "delivery_limit" if headers.get("x-death") else "(no reason)"
