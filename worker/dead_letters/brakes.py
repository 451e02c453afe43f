"""When a replay stops by itself, as rules over what the store says of its letters' fates
(`worker.dead_letters.fates`): a canary's verdict once its letters have fates or its time is up,
and the brake over its latest outcomes. `replays.run` looks, applies them, and pauses."""

from collections.abc import Sequence
from dataclasses import dataclass

from worker.dead_letters.fates import CanaryLetter, Window
from worker.settings import Settings


@dataclass(frozen=True, slots=True)
class Brakes:
    """When a replay stops by itself. A canary's letters wait at most `canary_timeout` seconds
    for their outcomes (looked at every `look_every`); any replay pauses when more than `share`
    of its latest `window` outcomes (since it last started) failed again."""

    canary_timeout: float = 60.0
    window: int = 20
    share: float = 0.5
    look_every: float = 0.2

    @classmethod
    def of(cls, settings: Settings, *, canary_timeout: float | None = None) -> "Brakes":
        """The settings' brakes (REPLAY_CANARY_TIMEOUT, REPLAY_BRAKE_WINDOW, REPLAY_BRAKE_SHARE)."""
        return cls(
            canary_timeout=canary_timeout or settings.replay_canary_timeout,
            window=settings.replay_brake_window,
            share=settings.replay_brake_share,
        )


DEFAULT_BRAKES = Brakes()  # the settings' defaults, for runs that pass none (tests, tools)


def braking(window: Window, brakes: Brakes) -> str | None:
    """Why the replay must pause: more than the brakes' share of its latest `window` outcomes
    failed again (counted against the whole window, so a short run brakes only on as many);
    None while it may go on."""
    if window.failed_again <= brakes.share * brakes.window:
        return None
    return (
        f"brake: {window.failed_again} of the latest {window.outcomes} outcomes failed again"
        f" (more than {brakes.share:.0%} of {brakes.window})"
    )


def verdict(letters: Sequence[CanaryLetter], timeout: float) -> tuple[str, str] | None:
    """The canary's verdict over its letters: None if every one resolved (the rest may go), else
    the operation's `canary_result` ("failed": which failed again, as which new letter, and why;
    "timed out": which had no fate within `timeout` seconds) and the reason it pauses with."""
    failed = [letter for letter in letters if letter.fate == "failed_again"]
    pending = [letter for letter in letters if letter.fate is None]
    if failed:
        return "failed", f"canary: {len(failed)} of {len(letters)} failed again: " + "; ".join(
            f"#{letter.letter_id} as #{letter.next_letter} ({letter.detail})" for letter in failed[:5]
        )
    if pending:
        return "timed out", (
            f"canary: {len(pending)} of {len(letters)} without an outcome after {timeout:g} s: "
            + ", ".join(f"#{letter.letter_id}" for letter in pending[:10])
        )
    return None
