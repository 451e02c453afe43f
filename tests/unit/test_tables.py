"""The tables people read: aligned, and never a raw control character from a message."""

from worker.printable import printable
from worker.tools.tables import render, shown


def test_control_characters_in_a_cell_are_escaped_and_the_columns_stay_aligned() -> None:
    """ESC, BEL, CR, NUL, DEL and C1 controls print as repr-style escapes; ordinary spaces and backslashes stay."""
    table = render(
        [{"id": "evt\x1b[2K-1", "why": "a b\r\x07\x00\x7f\x9b"}, {"id": "plain id", "why": "C:\\path"}],
        ["id", "why"],
    )
    assert table.splitlines() == [
        "id            why",
        "------------  ---------------------",
        "evt\\x1b[2K-1  a b\\r\\x07\\x00\\x7f\\x9b",
        "plain id      C:\\path",
    ]


def test_printable_escapes_what_a_terminal_would_act_on() -> None:
    """Line breaks, bidirectional overrides and line separators are spelled out; printable text is untouched."""
    assert printable("a\nb\u202ec\u2028d") == "a\\nb\\u202ec\\u2028d"
    assert printable("Zoë  Ünal, 東京") == "Zoë  Ünal, 東京"


def test_any_value_makes_a_cell() -> None:
    """None, lists, bytes and an integer too long for decimal all render instead of raising."""
    assert shown(None) == "-" and shown([]) == "-" and shown(["a\x1b", None]) == "a\\x1b, -"
    assert shown(b"\x1b") == "b'\\x1b'"
    assert shown(10**5000).startswith("0x")
