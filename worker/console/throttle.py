"""Password guessing costs the guesser, not the console. Each password check runs argon2 (64 MiB
and a few hundred milliseconds, on purpose), so at most a few run at once and the rest wait a
moment or are told to come back (429). Failures are counted per user name and per client
address: after a few, each further failure locks that name and that address for longer (1, 2,
4, 8 s... up to the lockout), and a locked one is refused without a hash. What is counted is
bounded: the least recently touched names and addresses are forgotten first."""

import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from worker.console.identity import NAME_SHOWN

FORGET_AFTER = 900.0
"""Seconds after its last failure that a name or address starts again from nothing."""


class Busy(Exception):
    """No password check could start in time; come back in a second."""


@dataclass(slots=True)
class _Strikes:
    failures: int = 0
    locked_until: float = 0.0
    last: float = 0.0


@dataclass(frozen=True, slots=True)
class Attempt:
    """One admitted password check: the keys it counts against, and the lock it began, if any."""

    keys: tuple[str, ...]
    failures: int
    locked_for: float | None


class SignInThrottle:
    def __init__(
        self,
        *,
        free_failures: int = 5,
        lockout: float = 15.0,
        checks_at_once: int = 2,
        wait: float = 1.0,
        size: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.free_failures, self.lockout, self.wait, self.size = free_failures, lockout, wait, size
        self._clock = clock
        self._slots = threading.BoundedSemaphore(checks_at_once)
        self._strikes: OrderedDict[str, _Strikes] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def keys(name: str, address: str | None) -> tuple[str, ...]:
        return (f"user:{name[:NAME_SHOWN]}", f"address:{address or 'unknown'}")

    def locked(self, keys: tuple[str, ...]) -> float | None:
        """Seconds until these keys may try again, or None if they may now."""
        now = self._clock()
        with self._lock:
            waits = [s.locked_until - now for s in map(self._strikes.get, keys) if s and s.locked_until > now]
        return max(waits) if waits else None

    def admit(self, keys: tuple[str, ...]) -> Attempt | float:
        """Count a check before it runs (so that concurrent guesses cannot slip past the count):
        the attempt, or the seconds to wait if a key is locked. Past the free failures, each
        attempt locks its keys at once for a while that doubles up to the lockout."""
        now = self._clock()
        with self._lock:
            found = [self._touched(key, now) for key in keys]
            waits = [s.locked_until - now for s in found if s.locked_until > now]
            if waits:
                return max(waits)
            locked_for = None
            for strikes in found:
                strikes.failures += 1
                strikes.last = now
                if strikes.failures > self.free_failures:
                    delay = self._delay(strikes.failures)
                    strikes.locked_until = now + delay
                    locked_for = max(locked_for or 0.0, delay)
            return Attempt(keys, max(s.failures for s in found), locked_for)

    def failed(self, attempt: Attempt) -> None:
        """The password was wrong: a lock this attempt began runs from now (the check itself may
        have taken a while), so the next guess waits the whole of it."""
        now = self._clock()
        with self._lock:
            for key in attempt.keys:
                strikes = self._strikes.get(key)
                if strikes is not None and strikes.failures > self.free_failures:
                    delay = self._delay(strikes.failures)
                    strikes.locked_until = max(strikes.locked_until, now + delay)

    def succeeded(self, attempt: Attempt) -> None:
        """The password was right: the name starts again from nothing; the address is not
        charged for this attempt."""
        with self._lock:
            user_key, *others = attempt.keys
            self._strikes.pop(user_key, None)
            for key in others:
                strikes = self._strikes.get(key)
                if strikes is not None:
                    strikes.failures = max(0, strikes.failures - 1)
                    if strikes.failures <= self.free_failures:
                        strikes.locked_until = 0.0

    def tracked(self) -> int:
        with self._lock:
            return len(self._strikes)

    @asynccontextmanager
    async def hash_slot(self) -> AsyncIterator[None]:
        """One of the few password checks that may run at once; Busy if none frees up within
        `wait` seconds. It waits on the event loop, holding no thread."""
        deadline = self._clock() + self.wait
        while not self._slots.acquire(blocking=False):
            if self._clock() >= deadline:
                raise Busy
            await anyio.sleep(0.02)
        try:
            yield
        finally:
            self._slots.release()

    def _delay(self, failures: int) -> float:
        """1, 2, 4, 8... seconds for each failure past the free ones, at most the lockout."""
        return min(self.lockout, 2.0 ** min(failures - self.free_failures - 1, 30))

    def _touched(self, key: str, now: float) -> _Strikes:
        strikes = self._strikes.get(key)
        if strikes is None or (now - strikes.last > FORGET_AFTER and strikes.locked_until <= now):
            strikes = self._strikes[key] = _Strikes()
        self._strikes.move_to_end(key)
        while len(self._strikes) > self.size:
            self._strikes.popitem(last=False)
        return strikes
