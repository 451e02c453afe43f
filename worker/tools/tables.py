"""Plain-text tables for the outputs people read, and `printable`, which every printed value
goes through: what is printed comes from messages anyone could have published, and a raw
ESC, CR or BEL reaching the operator's terminal could hide a row or rewrite a line."""

from collections.abc import Mapping, Sequence
from typing import Any


def printable(text: str) -> str:
    """`text` with every character a terminal could act on spelled out as Python does (`\\x1b`,
    `\\r`, `\\n`, `\\u202e`): C0 and C1 controls, DEL, and the other non-printable characters
    (bidirectional overrides, line separators...). Ordinary spaces stay; backslashes stay as
    they are, so a printed value reads like the value, not like a repr."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char == " " else repr(char)[1:-1] for char in text)


def shown(value: Any) -> str:
    """Any value as one printable cell: None as '-', a list as its items joined with ', '."""
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(shown(item) for item in value) or "-"
    return printable(as_text(value))


def render(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Left-aligned columns, a header and a rule; None shows as '-'."""
    cells = [[shown(row.get(column)) for column in columns] for row in rows]
    titles = [printable(column) for column in columns]
    widths = [max([len(title), *(len(line[i]) for line in cells)]) for i, title in enumerate(titles)]
    lines = [
        "  ".join(title.ljust(width) for title, width in zip(titles, widths, strict=True)).rstrip(),
        "  ".join("-" * width for width in widths),
    ]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in cells
    ]
    return "\n".join(lines)


def as_text(value: Any) -> str:
    """str(value), for any value: an integer too long for decimal (over 4300 digits) in hex."""
    try:
        return value if isinstance(value, str) else str(value)
    except ValueError:
        if isinstance(value, int):
            return hex(value)
        return f"(a {type(value).__name__} that cannot be shown)"
    except Exception:
        return f"(a {type(value).__name__} that cannot be shown)"
