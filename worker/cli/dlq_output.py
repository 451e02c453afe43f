"""How `renewals dlq` output reads: tables for people, JSON for scripts, progress on a terminal."""

import json
import time
from typing import IO, Any

import click

from worker.dead_letters import (
    DeadLetter,
    Plan,
    Report,
    Routes,
    as_dead_letter,
    cut,
    destination,
    label,
    target,
)
from worker.dead_letters.model import AuditEntry, Group, HistoryEntry, ReplayOperation, StoredLetter
from worker.printable import printable
from worker.tools.tables import render

PURGE_COLUMNS = ["#", "id", "type", "reason", "detail", "failed_at", "attempts", "replays"]
LIST_COLUMNS = [*PURGE_COLUMNS, "replay to"]
PLAN_COLUMNS = ["#", "id", "type", "reason", "replays", "action", "to / why"]
GROUP_COLUMNS = ["group", "count", "reason", "type", "first_seen", "last_seen", "per hour", "detail"]
HISTORY_COLUMNS = ["at", "what", "by", "operation", "to", "outcome"]
AUDIT_COLUMNS = ["at", "by", "action", "operation", "selection", "counts", "result"]
OPERATION_COLUMNS = [
    "operation",
    "status",
    "by",
    "started",
    "total",
    "replayed",
    "skipped",
    "failed",
    "resolved",
    "failed_again",
    "pending",
    "rate",
    "selection",
]
_BARS = " ▁▂▃▄▅▆▇█"


class Progress:
    """A one-line progress report on a terminal, redrawn at most ten times a second; the rate
    achieved shows once a second has passed."""

    def __init__(self, stream: IO[str], operation_id: str) -> None:
        self._stream = stream
        self._operation = operation_id
        self._shown = 0.0
        self._started = time.monotonic()
        self._first: int | None = None

    def __call__(self, report: Report, *, finished: bool = False) -> None:
        if self._first is None:
            self._first = report.scanned - 1
        if finished or time.monotonic() - self._shown >= 0.1:
            self._shown = time.monotonic()
            counts = report.counts()
            elapsed = time.monotonic() - self._started
            rate = f", {(report.scanned - self._first) / elapsed:.1f}/s" if elapsed >= 1.0 else ""
            self._stream.write(
                f"\rreplay {self._operation}: {report.scanned}/{report.total}, replayed {counts['done']},"
                f" skipped {counts['skipped']}, failed {counts['failed']}{rate}" + ("\n" if finished else "")
            )
            self._stream.flush()


def listed(stored: StoredLetter, routes: Routes | None) -> dict[str, Any]:
    """What `list` shows of a dead letter: its summary, state and group, and where a replay
    would send it (`replay_to` None: nowhere; `replay --dry-run` says why)."""
    letter = as_dead_letter(stored)
    to = "" if routes is None or cut(stored) else destination(letter, routes)
    replay_to = None if isinstance(to, str) else {"exchange": to[0], "routing_key": to[1]}
    return {
        **letter.summary(),
        "status": stored.summary.status,
        "group": stored.summary.group,
        "replay_to": replay_to,
    }


def row(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary as a table row: queue position, detail cut to fit, failure time to the second."""
    detail = printable(summary["detail"])  # escaped first: the cut is measured on what is printed
    failed_at = summary["failed_at"]
    replay_to = summary.get("replay_to")
    return {
        **summary,
        "#": summary["position"],
        "detail": detail if len(detail) <= 50 else detail[:49] + "…",
        "failed_at": None if failed_at is None else _to_the_second(failed_at),
        "replay to": None if replay_to is None else target((replay_to["exchange"], replay_to["routing_key"])),
    }


def _to_the_second(moment: str) -> str:
    """`2026-11-27 20:48:03Z`; a time UTC cannot hold keeps its own offset."""
    text = moment[:19].replace("T", " ")
    offset = moment[-6:] if moment[-6:-5] in ("+", "-") else ""
    return text + ("Z" if offset in ("", "+00:00") else offset)


def print_plans(plans: list[Plan[DeadLetter]], as_json: bool) -> None:
    """What a dry run shows: each selected dead letter and what a replay would do with it."""
    steps = [
        {
            **step.letter.summary(),
            "action": step.action,
            "note": step.note,
            "to": None if step.to is None else {"exchange": step.to[0], "routing_key": step.to[1]},
        }
        for step in plans
    ]
    if as_json:
        click.echo(json.dumps(steps, indent=2))
    elif not steps:
        click.echo("no dead letters: nothing to replay")
    else:
        click.echo(render([{**row(step), "to / why": step["note"]} for step in steps], PLAN_COLUMNS))
        replays = sum(step.action == "replay" for step in plans)
        skips = len(plans) - replays
        click.echo(f"\ndry run: would replay {replays}, skip {skips}; nothing was changed")


def print_report(report: Report, as_json: bool, operation: ReplayOperation) -> None:
    """After a replay: what was skipped or failed and why, then the counts."""
    if as_json:
        click.echo(json.dumps({
            "operation": operation.id,
            "status": operation.status,
            "replayed": [label(letter) for letter in report.done],
            "skipped": [{"id": label(step.letter), "why": step.note} for step in report.skipped],
            "failed": [{"id": label(letter), "error": error} for letter, error in report.failed],
            "canary_result": operation.canary_result,
            "pause_reason": operation.pause_reason,
        }, indent=2))  # fmt: skip
        return
    if report.total == 0:
        click.echo("no dead letters: nothing to replay")
        return
    problems = [
        {"#": step.letter.position, "id": label(step.letter), "result": "skipped", "why": step.note}
        for step in report.skipped
    ]
    problems += [
        {"#": letter.position, "id": label(letter), "result": "failed", "why": error}
        for letter, error in report.failed
    ]
    if problems:
        click.echo(render(sorted(problems, key=lambda row: row["#"]), ["#", "id", "result", "why"]) + "\n")
    counts = report.counts()
    click.echo(f"replayed {counts['done']}, skipped {counts['skipped']}, failed {counts['failed']}")


def _due(operation: ReplayOperation) -> str:
    if operation.status != "scheduled" or operation.not_before is None:
        return ""
    return f" for {operation.not_before.isoformat(timespec='seconds')}"


def print_scheduled(operation: ReplayOperation, as_json: bool) -> None:
    """After `replay --at`: the operation, when it is due, how to cancel it."""
    if as_json:
        click.echo(json.dumps(operation_row(operation), indent=2))
        return
    assert operation.not_before is not None
    click.echo(
        f"replay {operation.id} of {operation.total} dead letters scheduled for"
        f" {operation.not_before.isoformat(timespec='seconds')}: a worker runs it then;"
        f" cancel with `renewals dlq cancel {operation.id}`"
    )


def described(stored: StoredLetter) -> str:
    """What `show` prints: state, properties, headers, the body (pretty when it is JSON),
    then the history and notes.

    Everything from the message is escaped (`printable`) line by line: a line break shows as
    one, any other control character as `\\x1b` and the like.
    """
    letter = as_dead_letter(stored)
    record = letter.as_record()
    summary = stored.summary
    lines = [
        printable(f"dead letter {label(letter)}, #{summary.id}, {summary.status}, group {summary.group}"),
        *([printable(f"problem: {stored.problem}")] if stored.problem else []),
        *fate_lines(stored),
        "",
        "properties",
    ]
    lines += fields(record["properties"])
    size = (
        f"{len(letter.body)} bytes"
        if not stored.body_truncated
        else f"first {len(letter.body)} of {summary.body_size} bytes, sha256 {stored.body_sha256}"
    )
    lines += ["", "headers", *fields(record["headers"]), "", f"body ({size})"]
    if stored.erasure is not None:
        at = stored.erasure.at.isoformat(timespec="seconds")
        lines.append(f"erased {at} by {stored.erasure.actor} (operation {stored.erasure.operation_id})")
    elif record["body_encoding"] != "utf-8":
        lines.append(f"(not UTF-8; base64) {record['body']}")
    else:
        lines += [printable(line) for line in _pretty(letter.document, record["body"]).split("\n")]
    if stored.history:
        lines += ["", "history"]
        lines += [
            printable("  " + "  ".join(str(value) for value in history_row(entry).values() if value))
            for entry in stored.history
        ]
    return "\n".join(lines)


def fate_lines(stored: StoredLetter) -> list[str]:
    """What became of the letter's replay, and which letter it is a failed replay of."""
    lines = []
    if stored.previous_letter is not None:
        lines.append(f"a replay of #{stored.previous_letter} that failed again")
    fate = stored.fate
    if fate is not None:
        came_back = f", came back as #{fate.next_letter}" if fate.next_letter is not None else ""
        lines.append(
            printable(f"{fate.kind.replace('_', ' ')}{came_back} ({fate.detail}; replay {fate.operation_id})")
        )
    return lines


def history_row(entry: HistoryEntry) -> dict[str, Any]:
    """One entry of a letter's history as `history` shows it."""
    return {
        "at": entry.at.isoformat(timespec="seconds"),
        "what": entry.kind,
        "by": entry.actor,
        "operation": entry.operation_id,
        "to": None if entry.to is None else target(entry.to),
        "outcome": entry.text if entry.kind in ("note", "erased") else entry.outcome,
        "message_id": entry.message_id,
        "linked_letter": entry.linked_letter,
    }


def group_row(group: Group) -> dict[str, Any]:
    """One group as `groups` shows it, with its letters per hour as a sparkline."""
    top = max(group.trend, default=0)
    bars = "".join(_BARS[0 if not count else 1 + (count * 7) // max(top, 1)] for count in group.trend)
    return {
        "group": group.fingerprint,
        "count": group.count,
        "reason": group.reason,
        "type": group.event_type,
        "first_seen": group.first_seen.isoformat(timespec="seconds"),
        "last_seen": group.last_seen.isoformat(timespec="seconds"),
        "per hour": bars,
        "trend": group.trend,
        "detail": group.pattern,
    }


def audit_row(entry: AuditEntry) -> dict[str, Any]:
    """One audit row as `audit` shows it; `counts` stays a mapping in JSON."""
    return {
        "at": entry.at.isoformat(timespec="seconds"),
        "by": entry.actor,
        "action": entry.action,
        "operation": entry.operation_id,
        "selection": entry.selection,
        "counts": ", ".join(f"{name} {count}" for name, count in entry.counts.items()),
        "result": entry.result,
    }


def audit_document(entry: AuditEntry) -> dict[str, Any]:
    """One audit row for scripts: the console API's fields, the time in ISO 8601."""
    return {
        "at": entry.at.isoformat(),
        "actor": entry.actor,
        "action": entry.action,
        "operation_id": entry.operation_id,
        "selection": entry.selection,
        "counts": entry.counts,
        "result": entry.result,
    }


def operation_row(operation: ReplayOperation) -> dict[str, Any]:
    return {
        "operation": operation.id,
        "status": operation.status
        + (" (cancel requested)" if operation.cancel_requested and operation.status == "running" else "")
        + _due(operation),
        "by": operation.actor,
        "started": operation.started_at.isoformat(timespec="seconds"),
        "total": operation.total,
        "replayed": operation.replayed,
        "skipped": operation.skipped,
        "failed": operation.failed,
        "resolved": operation.resolved,
        "failed_again": operation.failed_again,
        "pending": operation.pending,
        "rate": operation.rate,
        "selection": operation.selection.describe(),
        "not_before": None if operation.not_before is None else operation.not_before.isoformat(),
        "canary": operation.canary or None,
        "canary_result": operation.canary_result,
        "pause_reason": operation.pause_reason,
    }


def fields(values: dict[str, Any]) -> list[str]:
    """Aligned `name  value` lines; a multi-line value continues indented below its name."""
    names = {name: printable(name) for name in values}
    width = max((len(shown) for shown in names.values()), default=0)
    lines = []
    for name, value in sorted(values.items()):
        text = value if isinstance(value, str) else json.dumps(value)
        first, *rest = [printable(line) for line in text.split("\n")]
        lines.append(f"  {names[name].ljust(width)}  {first}")
        lines += [f"  {'':{width}}  {line}" for line in rest]
    return lines


def _pretty(document: dict[str, Any] | None, body: str) -> str:
    """The JSON body indented, or as it came when it is not JSON or too deep to indent."""
    if document is None:
        return body
    try:
        return json.dumps(document, indent=2)
    except (RecursionError, ValueError):  # json.loads reads deeper than indenting can write
        return body
