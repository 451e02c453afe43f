"""The sign-in throttle on its own, on a clock the test moves: free failures, then locks that
double up to the lockout; a right password clears the name; concurrent guesses cannot slip past
the count; and what it remembers stays bounded however many names and addresses guess."""

import anyio
import pytest

from worker.console.throttle import Attempt, Busy, SignInThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fail(throttle: SignInThrottle, name: str = "vera", address: str = "10.0.0.1") -> Attempt | float:
    return throttle.admit(throttle.keys(name, address))


def test_failures_past_the_free_ones_lock_for_twice_as_long_up_to_the_lockout() -> None:
    """Three free failures, then each admitted guess locks its name for 1, 2, 4, 8, then 10 s."""
    clock = Clock()
    throttle = SignInThrottle(free_failures=3, lockout=10.0, clock=clock)
    assert [getattr(_fail(throttle), "locked_for", "?") for _ in range(3)] == [None, None, None]
    locks = []
    for _ in range(6):
        attempt = _fail(throttle)
        assert isinstance(attempt, Attempt) and attempt.locked_for is not None
        locks.append(attempt.locked_for)
        assert _fail(throttle) == pytest.approx(attempt.locked_for)  # refused: seconds to wait
        clock.now += attempt.locked_for
    assert locks == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_lock_runs_from_the_failure_not_from_the_start_of_a_slow_check() -> None:
    """A check that took three seconds and failed still locks its name for the full second after."""
    clock = Clock()
    throttle = SignInThrottle(free_failures=1, clock=clock)
    _fail(throttle)
    attempt = _fail(throttle)
    assert isinstance(attempt, Attempt) and attempt.locked_for == 1.0
    clock.now += 3.0
    throttle.failed(attempt)
    assert throttle.locked(attempt.keys) == pytest.approx(1.0)


def test_a_locked_name_is_locked_from_every_address_and_a_locked_address_for_every_name() -> None:
    """The count is kept per user name and per client address, each locking on its own."""
    throttle = SignInThrottle(free_failures=1, clock=Clock())
    _fail(throttle, "vera", "10.0.0.1")
    _fail(throttle, "vera", "10.0.0.1")
    assert isinstance(_fail(throttle, "vera", "10.0.0.2"), float)
    assert isinstance(_fail(throttle, "olive", "10.0.0.1"), float)
    assert isinstance(_fail(throttle, "olive", "10.0.0.2"), Attempt)


def test_a_right_password_clears_the_name_and_does_not_charge_the_address() -> None:
    """After a success the name starts again from nothing; the address keeps only its failures."""
    throttle = SignInThrottle(free_failures=2, clock=Clock())
    _fail(throttle)
    right = _fail(throttle)
    assert isinstance(right, Attempt)
    throttle.succeeded(right)
    assert throttle.locked(throttle.keys("vera", "10.0.0.1")) is None
    assert isinstance(_fail(throttle, "vera", "10.0.0.9"), Attempt) and _fail(throttle, "vera", "10.0.0.9")
    third = _fail(throttle, "olive", "10.0.0.1")  # the address: one failure, one success so far
    assert isinstance(third, Attempt) and third.failures == 2 and third.locked_for is None


def test_guesses_at_the_same_moment_past_the_free_ones_get_one_check() -> None:
    """Forty guesses arriving together once the free failures are spent: one is checked, 39 wait."""
    throttle = SignInThrottle(free_failures=5, clock=Clock())
    for _ in range(5):
        _fail(throttle)
    outcomes = [_fail(throttle) for _ in range(40)]
    assert sum(isinstance(outcome, Attempt) for outcome in outcomes) == 1


def test_what_the_throttle_remembers_is_bounded() -> None:
    """A million names from a million addresses leave at most `size` entries behind."""
    throttle = SignInThrottle(size=500, clock=Clock())
    for number in range(20_000):
        _fail(throttle, f"user{number}", f"10.{number // 65536}.{number // 256 % 256}.{number % 256}")
    assert throttle.tracked() == 500


def test_a_name_is_counted_by_its_first_characters_only() -> None:
    """A megabyte of user name is kept as a short key, not a megabyte."""
    throttle = SignInThrottle(clock=Clock())
    keys = throttle.keys("x" * (1 << 20), "10.0.0.1")
    assert max(len(key) for key in keys) < 100


def test_no_hash_slot_within_the_wait_is_busy() -> None:
    """With every slot taken, the next check waits `wait` seconds on the event loop and is Busy."""
    throttle = SignInThrottle(checks_at_once=1, wait=0.2)

    async def scenario() -> None:
        async with throttle.hash_slot():
            with pytest.raises(Busy):
                async with throttle.hash_slot():
                    pass
        async with throttle.hash_slot():
            pass  # free again once released

    anyio.run(scenario)
