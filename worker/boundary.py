"""The one boundary for everything a broker hands us, in every process (worker, drain, tools,
console): AMQP values bounded in depth and size, and a guard that sets one message aside alone.

Whoever can publish to a queue we read chooses its headers, and a header table may nest as
deep as a frame lets it (thousands of levels). Nothing here recurses, so no depth raises:

- `bounded(value)` copies an AMQP value (tables, arrays and the scalars py-amqp decodes)
  keeping at most MAX_DEPTH levels of tables and arrays, MAX_VALUES values, MAX_TEXT
  characters of text and bytes, and integers AMQP can carry (another client library may hand
  over wider ones, which no JSON writer takes past 4,300 digits). What lies past a bound is
  kept in a marked form: a string `(cut: ...; sha256 ...)` saying what was cut, with a digest
  of it, so two letters that differ only past the bound stay two letters. Within the bounds
  the copy equals the value. Everything downstream (JSON for the store, keys, pages, the API,
  the CLI) then walks at most MAX_DEPTH levels.
- `guarded(read, aside)` handles one message: whatever `read` raises (an Exception, never an
  interrupt) becomes `aside(why)`, a record that says why, and the message's neighbours go on.
"""

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any, TypeVar

MAX_DEPTH = 32  # tables and arrays inside each other; the broker's own x-death is 3
MAX_VALUES = 10_000  # values in one table, at every depth (a 128 KiB frame holds about 30,000)
MAX_TEXT = 1024 * 1024  # characters of text and bytes in one table, at every depth
MAX_WALK = 1_000_000  # values a digest reads at most (a frame holds far fewer)
_AMQP_INTEGERS = range(-(2**63), 2**64)  # a signed long-long, an unsigned timestamp: wider is no AMQP value
MARK = "(cut: "
_MAX_MARK = 200  # a marker is at most this long

T = TypeVar("T")


def bounded(value: Any, *, depth: int = MAX_DEPTH) -> Any:
    """A copy of `value` within the bounds, cut parts marked (see the module). Tables become
    dicts, arrays lists, bytearray and memoryview bytes; `depth` is the levels of tables and
    arrays kept (the store reads its JSON with a deeper one: its tags add levels)."""
    budget = _Budget()
    root: dict[str, Any] = {}
    # Depth first, in order: each task is one value, its depth, and where its copy goes.
    tasks: list[tuple[Any, int, dict[Any, Any] | list[Any], Any]] = [(value, 0, root, "")]
    cut: dict[int, _Cut] = {}
    while tasks:
        item, level, target, name = tasks.pop()
        if _is_mark(item):  # a marker of an earlier pass is kept as it is: bounding twice is bounding once
            _put(target, name, item)
            continue
        if budget.values <= 0:
            cut.setdefault(id(target), _Cut(target, name)).add(item)
            continue
        budget.values -= 1
        if isinstance(item, Mapping | list | tuple):
            if level >= depth:
                kind = "a table" if isinstance(item, Mapping) else "an array"
                _put(target, name, _mark(f"{kind} nested deeper than {depth} levels", digest(item)))
                continue
            if isinstance(item, Mapping):
                copy: dict[Any, Any] | list[Any] = {}
                entries = list(item.items())
                for key, _ in entries:
                    budget.text -= len(key) if isinstance(key, str | bytes) else 0
            else:
                copy, entries = [], list(enumerate(item))
            _put(target, name, copy)
            tasks.extend((inner, level + 1, copy, key) for key, inner in reversed(entries))
        elif isinstance(item, str | bytes | bytearray | memoryview):
            size = len(item)
            if size > budget.text:
                _put(target, name, _mark(f"{size} characters of text past the size kept", digest(item)))
                continue
            budget.text -= size
            _put(target, name, item if isinstance(item, str | bytes) else bytes(item))
        elif isinstance(item, int) and not isinstance(item, bool) and item not in _AMQP_INTEGERS:
            _put(
                target,
                name,
                _mark(f"an integer of {item.bit_length()} bits, wider than AMQP's", digest(item)),
            )
        else:
            _put(target, name, item)
    for dropped in cut.values():
        dropped.mark()
    return root[""]


def digest(value: Any) -> str:
    """16 hex digits of a SHA-256 over the value's types and contents, read without recursion
    (the first MAX_WALK values of it)."""
    hasher = hashlib.sha256()
    pending = [value]
    walked = 0
    while pending and walked < MAX_WALK:
        item = pending.pop()
        walked += 1
        if isinstance(item, Mapping):
            entries = list(item.items())
            hasher.update(b"{%d\x00" % len(entries))
            for key, inner in reversed(entries):
                pending += [inner, _Name(key)]
        elif isinstance(item, list | tuple):
            hasher.update(b"[%d\x00" % len(item))
            pending.extend(reversed(item))
        else:
            hasher.update(_token(item))
    return hasher.hexdigest()[:16]


def guarded(read: Callable[[], T], aside: Callable[[str], T]) -> T:
    """`read()`, or, if reading this one message fails, `aside(why)`: the message's own record
    of why, so that it is set aside alone and its neighbours go on."""
    try:
        return read()
    except Exception as exc:  # this message's failure, whatever it is; interrupts go on
        return aside(why(exc))


SET_ASIDE = "set aside, could not be read: "


def aside(why: str) -> str:
    """The `problem` of a message set aside: why it could not be read."""
    return SET_ASIDE + why


def why(error: BaseException) -> str:
    """An error in one line of at most 300 characters."""
    try:
        text = str(error)
    except Exception:  # a message that cannot be printed (an integer of 5,000 digits)
        text = "(unprintable)"
    return " ".join(f"{type(error).__name__}: {text}".split())[:300]


class _Budget:
    __slots__ = ("text", "values")

    def __init__(self) -> None:
        self.values = MAX_VALUES
        self.text = MAX_TEXT


class _Name:
    """A table's entry name, in a digest's walk."""

    __slots__ = ("name",)

    def __init__(self, name: Any) -> None:
        self.name = name


class _Cut:
    """What a table or array lost to MAX_VALUES: its first dropped entry's place holds the marker."""

    __slots__ = ("count", "hasher", "name", "target")

    def __init__(self, target: dict[Any, Any] | list[Any], name: Any) -> None:
        self.target, self.name, self.count, self.hasher = target, name, 0, hashlib.sha256()

    def add(self, item: Any) -> None:
        self.count += 1
        self.hasher.update(digest(item).encode("ascii"))

    def mark(self) -> None:
        text = f"{self.count} more {'value' if self.count == 1 else 'values'} past the {MAX_VALUES} kept"
        _put(self.target, self.name, _mark(text, self.hasher.hexdigest()[:16]))


def _put(target: dict[Any, Any] | list[Any], name: Any, item: Any) -> None:
    if isinstance(target, list):
        target.append(item)
    else:
        target[name] = item


def _mark(what: str, hexdigest: str) -> str:
    return f"{MARK}{what}; sha256 {hexdigest})"


def _is_mark(item: Any) -> bool:
    return isinstance(item, str) and item.startswith(MARK) and len(item) <= _MAX_MARK


def _token(item: Any) -> bytes:
    """One scalar (or entry name) as unambiguous bytes: its type, its length, its content."""
    if isinstance(item, _Name):
        kind, content = b"name", _token(item.name)
    elif isinstance(item, str):
        kind, content = b"str", item.encode("utf-8", "surrogatepass")
    elif isinstance(item, bytes | bytearray | memoryview):
        kind, content = b"bytes", bytes(item)
    elif isinstance(item, bool) or item is None:
        kind, content = b"const", repr(item).encode("ascii")
    elif isinstance(item, int):
        kind, content = b"int", format(item, "x").encode("ascii")  # any size: hex has no digit limit
    elif isinstance(item, float | Decimal):
        kind, content = type(item).__name__.encode("ascii"), str(item).encode("ascii")
    elif isinstance(item, datetime):
        kind, content = b"time", item.isoformat().encode("ascii")
    else:
        kind, content = b"other", type(item).__name__.encode("utf-8", "replace")
    return kind + b":%d:" % len(content) + content
