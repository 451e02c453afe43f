"""How `renewals dlq` output reads: tables for people, JSON for scripts, progress on a terminal."""

import json
import time
from typing import IO, Any

import click

from worker.tools.dead_letters import DeadLetter, Plan, Report, label
from worker.tools.tables import render

LIST_COLUMNS = ["#", "id", "type", "reason", "detail", "failed_at", "attempts", "replays",
                "routing_key"]  # fmt: skip
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


def row(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary as a table row: queue position, detail cut to fit, failure time to the second."""
    detail = summary["detail"]
    failed_at = summary["failed_at"]
    return {
        **summary,
        "#": summary["position"],
        "detail": detail if len(detail) <= 50 else detail[:49] + "…",
        "failed_at": None if failed_at is None else failed_at[:19].replace("T", " ") + "Z",
    }


def print_plans(plans: list[Plan], queue: str, as_json: bool) -> None:
    """What a dry run shows: each selected dead letter and what a replay would do with it."""
    steps = [{**step.letter.summary(), "action": step.action, "note": step.note} for step in plans]
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
    """What `show` prints: properties, headers, then the body (pretty when it is JSON)."""
    record = letter.as_record()
    lines = [
        f"dead letter {label(letter)}, position {letter.position} in {queue}",
        "",
        "properties",
    ]
    lines += fields(record["properties"])
    lines += ["", "headers", *fields(record["headers"]), "", f"body ({len(letter.body)} bytes)"]
    if letter.document is not None:
        lines.append(json.dumps(letter.document, indent=2))
    elif record["body_encoding"] == "utf-8":
        lines.append(record["body"])
    else:
        lines.append(f"(not UTF-8; base64) {record['body']}")
    return "\n".join(lines)


def fields(values: dict[str, Any]) -> list[str]:
    """Aligned `name  value` lines; a multi-line value continues indented below its name."""
    width = max((len(name) for name in values), default=0)
    lines = []
    for name, value in sorted(values.items()):
        text = value if isinstance(value, str) else json.dumps(value)
        first, *rest = text.splitlines() or [""]
        lines.append(f"  {name.ljust(width)}  {first}")
        lines += [f"  {'':{width}}  {line}" for line in rest]
    return lines
