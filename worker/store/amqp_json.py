"""AMQP field values as JSON text and back, exactly: what the store keeps of a letter's
properties and headers, so that a replay sends them as they came.

JSON holds str, int, bool, None, lists and objects as they are. The rest is tagged as a
one-key object: bytes `{"$b": base64}`, datetime `{"$t": iso}`, Decimal `{"$d": text}`, a
non-finite float `{"$f": "nan"}`, and a table with a key starting with `$` `{"$m": [[k, v]...]}`.

Both ways go through `worker.boundary.bounded` first, so the walks below (which recurse) never
go deeper than its MAX_DEPTH, whatever a header held or an older release stored.
"""

import base64
import json
import math
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.boundary import MARK, MAX_DEPTH, bounded

_TAGS = frozenset({"$b", "$t", "$d", "$f", "$m"})
# A table's levels as JSON: a `$m` tag adds two, so stored JSON is read this deep, then bounded.
_STORED_DEPTH = 3 * MAX_DEPTH + 2


def dumps(value: Any) -> str:
    """Canonical text (sorted keys, no spaces): equal values give equal text."""
    return json.dumps(encoded(bounded(value)), sort_keys=True, separators=(",", ":"))


def loads(text: str) -> Any:
    """The value `dumps` wrote, within the bounds (a row an older release wrote may be deeper).
    RecursionError only for text JSON itself cannot read (over about 1,000 levels)."""
    return bounded(decoded(bounded(json.loads(text), depth=_STORED_DEPTH)))


def encoded(value: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$f": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime):
        return {"$t": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, Mapping):
        items = [(str(key), encoded(item)) for key, item in value.items()]
        if any(key.startswith("$") for key, _ in items):
            return {"$m": [[key, item] for key, item in items]}
        return dict(items)
    if isinstance(value, (list, tuple)):
        return [encoded(item) for item in value]
    return {"$b": base64.b64encode(str(value).encode("utf-8", "surrogatepass")).decode("ascii")}


def decoded(value: Any) -> Any:
    if isinstance(value, list):
        return [decoded(item) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        [(tag, inner)] = value.items()
        if tag in _TAGS:
            return _untagged(tag, inner)
    return {key: decoded(item) for key, item in value.items()}


def _untagged(tag: str, inner: Any) -> Any:
    if isinstance(inner, str) and inner.startswith(MARK):  # what `bounded` cut of an old row
        return inner
    if tag == "$b":
        return base64.b64decode(inner)
    if tag == "$t":
        return datetime.fromisoformat(inner)
    if tag == "$d":
        return Decimal(inner)
    if tag == "$f":
        return float(inner)
    return {key: decoded(item) for key, item in inner}
