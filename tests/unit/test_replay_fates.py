"""Closing a replay's loop, as rules without a broker or a store: what a copy carries, how its
headers are read back (every header untrusted), the words a fate is written in, and where a
replay's brakes come from."""

from typing import Any

import pytest

from worker.dead_letters import DeadLetter
from worker.dead_letters.fates import NOTHING_NEEDED, ReplayOf, replay_of, resolution
from worker.dead_letters.replays import Brakes
from worker.messaging import REPLAY_COUNT, REPLAY_OF_LETTER, REPLAY_OPERATION
from worker.settings import Settings


def test_a_replay_copy_names_its_letter_and_operation_afresh() -> None:
    """A copy of a letter that was itself a failed replay names this letter and this operation, not the old ones."""
    headers = {REPLAY_OF_LETTER: 3, REPLAY_OPERATION: "old-op", REPLAY_COUNT: 1, "x-trace": "t"}
    dead = DeadLetter.read(12, {"headers": headers, "message_id": "evt-1"}, b"{}")
    assert dead.replay_properties("new-op")["headers"] == {
        "x-trace": "t",
        REPLAY_COUNT: 2,
        REPLAY_OF_LETTER: 12,
        REPLAY_OPERATION: "new-op",
    }
    assert REPLAY_OF_LETTER not in dead.replay_properties()["headers"]  # no operation: no link


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({REPLAY_OF_LETTER: 7, REPLAY_OPERATION: "op1"}, ReplayOf(7, "op1")),
        ({REPLAY_OF_LETTER: 7, REPLAY_OPERATION: b"op1"}, ReplayOf(7, "op1")),
        ({REPLAY_OF_LETTER: True, REPLAY_OPERATION: "op1"}, None),
        ({REPLAY_OF_LETTER: -1, REPLAY_OPERATION: "op1"}, None),
        ({REPLAY_OF_LETTER: "7", REPLAY_OPERATION: "op1"}, None),
        ({REPLAY_OF_LETTER: 7}, None),
        ({REPLAY_OPERATION: "op1"}, None),
        ({}, None),
    ],
)
def test_only_a_letter_id_and_an_operation_id_read_as_a_replay_copy(
    headers: dict[str, Any], expected: Any
) -> None:
    """A letter id is a count (no bool, negative or text), the operation some text; anything else is no copy."""
    assert replay_of(headers) == expected


def test_a_long_operation_header_is_cut_to_an_operations_length() -> None:
    """A forged operation id of a megabyte is read as its first 64 characters."""
    found = replay_of({REPLAY_OF_LETTER: 1, REPLAY_OPERATION: "x" * 1_000_000})
    assert found is not None and len(found.operation_id) == 64


def test_a_resolution_names_the_notification_or_says_none_was_needed() -> None:
    """The history's words for a resolved letter."""
    assert resolution("n-1") == "notification n-1 requested"
    assert resolution(None) == NOTHING_NEEDED == "handled, no notification needed"


def test_the_brakes_come_from_the_settings_and_a_canary_timeout_option_wins() -> None:
    """REPLAY_CANARY_TIMEOUT, REPLAY_BRAKE_WINDOW and REPLAY_BRAKE_SHARE; `--canary-timeout` overrides the first."""
    settings = Settings(replay_canary_timeout=30, replay_brake_window=10, replay_brake_share=0.25)
    assert Brakes.of(settings) == Brakes(canary_timeout=30, window=10, share=0.25)
    assert Brakes.of(settings, canary_timeout=5).canary_timeout == 5
    assert Brakes.of(Settings()) == Brakes(canary_timeout=60, window=20, share=0.5)
