"""An edit's difference, as the command line, the console and the API show it: the headers that
may change, then the body as indented JSON, as unified-diff lines; and an edit kept, whole both
ways, as a JSON document."""

import difflib
import json
from collections.abc import Mapping
from typing import Any

from worker.dead_letters import values
from worker.dead_letters.guardrails import editable_headers
from worker.dead_letters.model import EditRecord


def diff(
    body_before: bytes, headers_before: Mapping[str, Any], body_after: bytes, headers_after: Mapping[str, Any]
) -> list[str]:
    """Unified-diff lines (no line endings) of the headers, one `name: value` a line, then
    the bodies, indented as JSON where they are JSON."""
    return [
        *difflib.unified_diff(
            _header_lines(headers_before),
            _header_lines(headers_after),
            "headers before",
            "headers after",
            lineterm="",
        ),
        *difflib.unified_diff(
            pretty(body_before).splitlines(),
            pretty(body_after).splitlines(),
            "body before",
            "body after",
            lineterm="",
        ),
    ]


def record_diff(record: EditRecord) -> list[str]:
    """An edit's before and after as `diff` shows them."""
    return diff(
        record.body_before,
        editable_headers(record.headers_before),
        record.body_after,
        editable_headers(record.headers_after),
    )


def edit_document(record: EditRecord) -> dict[str, Any]:
    """An edit, JSON-safe, whole both ways (the CLI's `dlq edits --json` and the API's)."""

    def side(body: bytes, headers: dict[str, Any]) -> dict[str, Any]:
        encoding, text = values.body_text(body)
        return {"headers": values.plain(headers), "body_encoding": encoding, "body": text}

    return {
        "operation_id": record.operation_id,
        "letter": record.letter_id,
        "at": record.at.isoformat(timespec="milliseconds"),
        "actor": record.actor,
        "message_id": record.message_id,
        "exchange": record.to[0],
        "routing_key": record.to[1],
        "before": side(record.body_before, record.headers_before),
        "after": side(record.body_after, record.headers_after),
        "diff": record_diff(record),
    }


def pretty(body: bytes) -> str:
    """Indented JSON if the body is JSON, else the text (undecodable bytes escaped)."""
    text = body.decode("utf-8", "backslashreplace")
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, or nested deeper than JSON is read here
        return text


def _header_lines(headers: Mapping[str, Any]) -> list[str]:
    return [f"{name}: {value}" for name, value in sorted(headers.items())]
