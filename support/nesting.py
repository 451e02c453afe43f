"""How deep a value nests: the tests' measure of what the boundary (worker/boundary.py) lets
through, counted without recursion, so a value 100,000 levels deep is measured too."""

from collections.abc import Mapping
from typing import Any


def depth_of(value: Any) -> int:
    """Levels of tables (mappings) and arrays (lists) in `value`; 0 for a plain value."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, level = pending.pop()
        if isinstance(item, Mapping | list):
            deepest = max(deepest, level)
            pending.extend(
                (inner, level + 1) for inner in (item.values() if isinstance(item, Mapping) else item)
            )
    return deepest
