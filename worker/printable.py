"""`printable`, which every printed value goes through, and `as_text`: what is printed comes
from messages anyone could have published, and a raw ESC, CR or BEL reaching the operator's
terminal could hide a row or rewrite a line. Neutral ground: the worker, its settings, the dead
letters and the tools' tables all use it, and it imports nothing of ours."""

from typing import Any


def printable(text: str) -> str:
    """`text` with every character a terminal could act on spelled out as Python does (`\\x1b`,
    `\\r`, `\\n`, `\\u202e`): C0 and C1 controls, DEL, and the other non-printable characters
    (bidirectional overrides, line separators...). Ordinary spaces stay; backslashes stay as
    they are, so a printed value reads like the value, not like a repr."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() or char == " " else repr(char)[1:-1] for char in text)


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
