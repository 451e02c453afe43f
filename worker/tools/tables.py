"""Plain-text tables for the outputs people read; every cell goes through `printable`
(worker/printable.py)."""

from collections.abc import Mapping, Sequence
from typing import Any

from worker.printable import as_text, printable


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
