"""Retrying, one way: tenacity's `Retrying`, with the worker's two waits.

- Connecting (the broker, and the store at start-up): full jitter, from 0.1s, growing
  exponentially up to `max_delay`, so a fleet of workers does not come back at the same instants.
- Reconnecting to the store during an outage: half jitter around a delay doubling from 0.2s up
  to `max_delay`, waited before every attempt (the store was just lost: the first attempt too).
"""

import threading
from collections.abc import Callable
from typing import Any

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_when_event_set,
    wait_chain,
    wait_exponential,
    wait_fixed,
    wait_none,
    wait_random,
    wait_random_exponential,
)
from tenacity.wait import wait_base

Errors = type[BaseException] | tuple[type[BaseException], ...]


def full_jitter(max_delay: float) -> wait_base:
    """A wait drawn from 0.1s up to 0.5s * 2^attempt, capped at `max_delay`."""
    return wait_random_exponential(multiplier=0.5, max=max_delay, min=0.1)


def half_jitter(first: float, max_delay: float) -> wait_base:
    """A wait drawn between half and all of a delay that is `first`, then doubles up to
    `max_delay` (a maximum below `first` caps the later waits only, never the first)."""
    half = wait_exponential(multiplier=first / 2, max=max_delay / 2)
    doubling = half + wait_random_exponential(multiplier=first / 2, max=max_delay / 2)
    return wait_chain(wait_fixed(first / 2) + wait_random(0, first / 2), doubling)


def until_stopped(
    retry_on: Errors,
    *,
    max_delay: float,
    stop: threading.Event,
    sleep: Callable[[float], Any],
    before_sleep: Callable[[RetryCallState], None],
) -> Retrying:
    """Calls retried on `retry_on` with full jitter until `stop` (an Event) is set; then the
    call's result is None."""
    return Retrying(
        retry=retry_if_exception_type(retry_on),
        wait=full_jitter(max_delay),
        stop=stop_when_event_set(stop),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=False,
        retry_error_callback=lambda _state: None,
    )


def waiting_first(retry_on: Errors, *, wait: wait_base, sleep: Callable[[float], None]) -> Retrying:
    """Calls retried on `retry_on` for as long as it takes, sleeping `wait` before every attempt,
    the first included."""
    return Retrying(
        retry=retry_if_exception_type(retry_on),
        before=lambda state: sleep(wait(state)),
        wait=wait_none(),
        sleep=lambda _seconds: None,
    )
