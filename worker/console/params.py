"""The values a request may carry, as types the pages, the forms and the API share. Each says its
range, form and length, so that a value neither store can take (an id past SQLite's 64-bit
integers, a NUL that PostgreSQL refuses in text, a search longer than SQLite's LIKE allows, a
digit that is not 0-9) is a 422 saying what is wrong, never a 500 from the store."""

from collections.abc import Sequence
from typing import Annotated, Any

from annotated_types import Ge, Le
from fastapi import Path
from pydantic import AfterValidator, BeforeValidator, StringConstraints

INT64_MAX = 2**63 - 1  # SQLite's INTEGER and PostgreSQL's bigint hold no more
TEXT_MAX = 1_000  # characters of one filter value, a partner or client id
SEARCH_MAX = 1_000  # characters of a text search: escaped and in UTF-8, far below SQLite's 50,000 bytes
VALUES_MAX = 1_000  # values of one repeatable filter (SQLite binds at most 32,766 per statement)
OPERATION_ID_MAX = 64  # a replay's id is 12 hex digits; room for ids written by hand
NOTE_MAX = 4_000  # characters of a triage note


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


def _blank_is_none(value: Any) -> Any:
    """An empty field of a form (or `?since=`) is no value."""
    return None if isinstance(value, str) and not value.strip() else value


def _without_blanks(values: Any) -> Any:
    """A repeatable field's values, trimmed, without the empty ones a form sends."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        return values
    kept = [v for v in values if not (isinstance(v, str) and not v.strip())]
    return [v.strip() if isinstance(v, str) else v for v in kept]


RowId = Annotated[int, Ge(1), Le(INT64_MAX)]
"""A row id (a letter's number, a page's `after`): 1 up to the largest 64-bit integer."""

Count = Annotated[int, Ge(1), Le(INT64_MAX)]
"""A positive count (a selection's `limit`)."""

Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=TEXT_MAX), AfterValidator(_no_nul)]
"""One value of a filter (reason, type, event id, group), or a partner or client id."""

SearchText = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=SEARCH_MAX), AfterValidator(_no_nul)
]
"""What the text search looks for."""

OperationId = Annotated[
    str, StringConstraints(min_length=1, max_length=OPERATION_ID_MAX), AfterValidator(_no_nul)
]
"""A replay operation's id."""

NoteText = Annotated[str, StringConstraints(min_length=1, max_length=NOTE_MAX), AfterValidator(_no_nul)]
"""A triage note."""

Many = BeforeValidator(_without_blanks)
"""For a repeatable field: blank values dropped (use as `Annotated[list[Text], Many, ...]`)."""

Blank = BeforeValidator(_blank_is_none)
"""For an optional field: a blank value is none (use as `Annotated[X | None, Blank, ...]`)."""


LetterId = Annotated[RowId, Path(description="the letter's number")]
"""A letter's number in a path (/letters/{letter_id})."""

ReplayId = Annotated[OperationId, Path(description="the replay operation's id")]
"""A replay's id in a path (/replays/{operation_id})."""


def one_line(errors: Sequence[Any]) -> str:
    """Validation errors (pydantic's, FastAPI's) as one line, without the values sent."""
    parts = []
    for error in errors:
        where = ".".join(str(part) for part in error.get("loc", ()) if part not in ("query", "path", "body"))
        parts.append(f"{where or 'request'}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"
