"""The worker's one way of retrying: tenacity, with the two waits it has always had."""

import threading

import pytest
from tenacity import RetryCallState, Retrying

from worker.retrying import full_jitter, half_jitter, until_stopped, waiting_first
from worker.store import StoreUnavailable


def _state(attempt: int) -> RetryCallState:
    state = RetryCallState(retry_object=Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return state


@pytest.mark.parametrize("max_delay", [0.05, 0.3, 0.5, 3.0, 30.0])
def test_half_jitter_draws_between_half_and_all_of_a_doubling_delay(max_delay: float) -> None:
    """Attempt n waits between d/2 and d, where d doubles from 0.2s and stops at the maximum,
    as the store line's hand-written loop did (`uniform(delay / 2, delay)`, `delay * 2`), whose
    first delay was 0.2s whatever the maximum."""
    wait = half_jitter(0.2, max_delay)
    delay = 0.2
    for attempt in range(1, 12):
        drawn = [wait(_state(attempt)) for _ in range(200)]
        assert all(delay / 2 - 1e-9 <= seconds <= delay + 1e-9 for seconds in drawn), (attempt, delay)
        assert max(drawn) - min(drawn) > delay / 4  # jittered, not fixed
        delay = min(delay * 2, max_delay)


def test_full_jitter_stays_between_its_floor_and_the_maximum() -> None:
    """The connecting wait is drawn from 0.1s up to the growing bound, never above max_delay."""
    wait = full_jitter(2.0)
    for attempt in range(1, 10):
        bound = min(0.5 * 2 ** (attempt - 1), 2.0)
        assert all(0.1 <= wait(_state(attempt)) <= bound for _ in range(100))


def test_waiting_first_sleeps_before_every_attempt_the_first_included() -> None:
    """Two failures then success: three sleeps, one before each attempt, doubling."""
    slept: list[float] = []
    outcomes = [StoreUnavailable("down"), StoreUnavailable("down"), None]

    def reconnect() -> str:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome
        return "back"

    retrying = waiting_first(StoreUnavailable, wait=half_jitter(0.2, 30.0), sleep=slept.append)
    assert retrying(reconnect) == "back"
    assert len(slept) == 3
    for seconds, delay in zip(slept, (0.2, 0.4, 0.8), strict=True):
        assert delay / 2 <= seconds <= delay


def test_waiting_first_lets_other_errors_through() -> None:
    """Only the named errors are retried; anything else is raised at once."""

    def broken() -> None:
        raise KeyError("bug")

    with pytest.raises(KeyError):
        waiting_first(StoreUnavailable, wait=half_jitter(0.2, 1.0), sleep=lambda _s: None)(broken)


def test_until_stopped_gives_none_once_stop_is_set() -> None:
    """A call that keeps failing is retried until the stop event is set; the result is then None."""
    stop = threading.Event()
    attempts: list[float] = []

    def failing() -> str:
        raise ConnectionError("away")

    def sleep(seconds: float) -> None:
        attempts.append(seconds)
        if len(attempts) == 3:
            stop.set()

    logged: list[int] = []
    retrying = until_stopped(
        ConnectionError,
        max_delay=1.0,
        stop=stop,
        sleep=sleep,
        before_sleep=lambda state: logged.append(state.attempt_number),
    )
    assert retrying(failing) is None
    assert logged == [1, 2, 3] and all(0.1 <= seconds <= 1.0 for seconds in attempts)
