"""Closing a replay's loop, as rules without a broker or a store: what a copy carries, how its
headers are read back (every header untrusted), the words a fate is written in, and where a
replay's brakes come from."""

from typing import Any

import pytest

from worker.dead_letters import DeadLetter
from worker.dead_letters.brakes import Brakes, braking, verdict
from worker.dead_letters.fates import NOTHING_NEEDED, CanaryLetter, ReplayOf, Window, replay_of, resolution
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


def test_the_brake_holds_only_past_its_share_of_the_whole_window() -> None:
    """10 of the last 20 failing again is not more than half; 11 is, and the reason says so; a short run of 11 failures brakes too."""
    brakes = Brakes(window=20, share=0.5)
    assert braking(Window(outcomes=20, failed_again=10), brakes) is None
    assert braking(Window(outcomes=20, failed_again=11), brakes) == (
        "brake: 11 of the latest 20 outcomes failed again (more than 50% of 20)"
    )
    assert braking(Window(outcomes=11, failed_again=11), brakes) is not None
    assert braking(Window(outcomes=20, failed_again=20), Brakes(share=1)) is None  # a share of 1: never


def canary(
    letter_id: int, fate: str | None, next_letter: int | None = None, detail: str | None = None
) -> CanaryLetter:
    return CanaryLetter(letter_id, f"evt-{letter_id}", fate, detail, next_letter)


def test_a_canary_passes_only_when_every_letter_resolved() -> None:
    """All resolved: go on. One failed again: which, as which new letter, and why. One without a fate: which, after how long."""
    assert verdict([canary(1, "resolved"), canary(2, "resolved")], 60) is None
    assert verdict([canary(1, "resolved"), canary(2, "failed_again", 9, "no_recipient: nobody")], 60) == (
        "failed",
        "canary: 1 of 2 failed again: #2 as #9 (no_recipient: nobody)",
    )
    assert verdict([canary(1, "resolved"), canary(2, None)], 7.5) == (
        "timed out",
        "canary: 1 of 2 without an outcome after 7.5 s: #2",
    )
    assert (
        verdict([canary(1, "failed_again", 3, "x"), canary(2, None)], 60) is not None
    )  # a failure outranks a wait
    assert verdict([canary(1, "failed_again", 3, "x"), canary(2, None)], 60)[0] == "failed"  # type: ignore[index]
