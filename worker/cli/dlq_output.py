"""How `renewals dlq` output reads: tables for people, JSON for scripts, progress on a terminal."""

import json
import time
from typing import IO, Any

import click

from worker.tools.dead_letters import DeadLetter, Plan, Report, Routes, destination, label, target
from worker.tools.tables import printable, render

PURGE_COLUMNS = ["#", "id", "type", "reason", "detail", "failed_at", "attempts", "replays"]
LIST_COLUMNS = [*PURGE_COLUMNS, "replay to"]
PLAN_COLUMNS = ["#", "id", "type", "reason", "replays", "action", "to / why"]


class Progress:
    """A one-line progress report on a terminal, redrawn at most ten times a second."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._shown = 0.0

    def __call__(self, report: Report, *, finished: bool = False) -> None:
        if finished or time.monotonic() - self._shown >= 0.1:
            self._shown = time.monotonic()
            counts = report.counts()
            self._stream.write(
                f"\rreplaying: read {report.scanned}/{report.total}, replayed {counts['done']},"
                f" skipped {counts['skipped']}, failed {counts['failed']}" + ("\n" if finished else "")
            )
            self._stream.flush()


def listed(letter: DeadLetter, routes: Routes) -> dict[str, Any]:
    """What `list` shows of a dead letter: its summary and where a replay would send it
    (`replay_to` None: nowhere; `replay --dry-run` says why)."""
    to = destination(letter, routes)
    replay_to = None if isinstance(to, str) else {"exchange": to[0], "routing_key": to[1]}
    return {**letter.summary(), "replay_to": replay_to}


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


def print_plans(plans: list[Plan], queue: str, as_json: bool) -> None:
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
        click.echo(f"{queue} is empty: nothing to replay")
    else:
        click.echo(render([{**row(step), "to / why": step["note"]} for step in steps], PLAN_COLUMNS))
        replays = sum(step.action == "replay" for step in plans)
        skips = len(plans) - replays
        click.echo(f"\ndry run: would replay {replays}, skip {skips}; nothing was changed")


def print_report(report: Report, queue: str, as_json: bool) -> None:
    """After a replay: what was skipped or failed and why, then the counts."""
    if as_json:
        click.echo(json.dumps({
            "replayed": [label(letter) for letter in report.done],
            "skipped": [{"id": label(step.letter), "why": step.note} for step in report.skipped],
            "failed": [{"id": label(letter), "error": error} for letter, error in report.failed],
        }, indent=2))  # fmt: skip
        return
    if report.total == 0:
        click.echo(f"{queue} is empty: nothing to replay")
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


def described(letter: DeadLetter, queue: str) -> str:
    """What `show` prints: properties, headers, then the body (pretty when it is JSON).

    Everything from the message is escaped (`printable`) line by line: a line break shows as
    one, any other control character as `\\x1b` and the like.
    """
    record = letter.as_record()
    lines = [
        printable(f"dead letter {label(letter)}, position {letter.position} in {queue}"),
        "",
        "properties",
    ]
    lines += fields(record["properties"])
    lines += ["", "headers", *fields(record["headers"]), "", f"body ({len(letter.body)} bytes)"]
    if record["body_encoding"] != "utf-8":
        lines.append(f"(not UTF-8; base64) {record['body']}")
    else:
        lines += [printable(line) for line in _pretty(letter.document, record["body"]).split("\n")]
    return "\n".join(lines)


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
