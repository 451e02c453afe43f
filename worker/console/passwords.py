"""A password check, as the login form and HTTP Basic make it: throttled (worker.console.throttle),
run off the event loop, and every failure and every lock written to the store's audit and to
one log line, with the submitted user name cut to a bounded length."""

import math
from typing import Literal

from starlette.concurrency import run_in_threadpool

from worker.console.identity import Identity, shown_name
from worker.console.state import Console
from worker.console.throttle import Attempt, Busy
from worker.logs import get_logger

log = get_logger("worker.console")

Door = Literal["form", "basic"]


class Throttled(Exception):
    """Too many failed sign-ins (or too many at once): come back in `retry_after` seconds."""

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.reason, self.retry_after = reason, max(1, math.ceil(retry_after))


async def check_password(
    console: Console, address: str | None, name: str, password: str, door: Door
) -> Identity | None:
    """The user this password signs in, None if it does not (audited), or Throttled."""
    users = console.access.users
    if users is None:
        return None
    users.refresh()
    if door == "basic":
        known = console.basic_checks.remembered(users, name, password)
        if known is not None:
            return known  # right a moment ago: no hash, and never throttled
    throttle = console.throttle
    keys = throttle.keys(name, address)
    wait = throttle.locked(keys)
    if wait is not None:
        raise _locked(wait)
    try:
        async with throttle.hash_slot():
            attempt = throttle.admit(keys)
            if not isinstance(attempt, Attempt):
                raise _locked(attempt)
            return await run_in_threadpool(_checked, console, attempt, address, name, password, door)
    except Busy:
        raise Throttled("too many sign-ins at once: try again in a second", 1.0) from None


def _locked(wait: float) -> Throttled:
    return Throttled(f"too many failed sign-ins: try again in {max(1, math.ceil(wait))} s", wait)


def _checked(
    console: Console, attempt: Attempt, address: str | None, name: str, password: str, door: Door
) -> Identity | None:
    """Run the hash (in a worker thread) and record what came of it."""
    users = console.access.users
    assert users is not None  # checked by the caller
    identity = console.basic_checks.verify(users, name, password)
    if identity is not None:
        console.throttle.succeeded(attempt)
        return identity
    console.throttle.failed(attempt)
    shown = shown_name(name)
    where = f"from {address or 'unknown'} by {door}"
    log.warning("console.sign_in_refused", user=shown, address=address, door=door, failures=attempt.failures)
    records = console.records()
    records.audit(
        "sign_in_refused",
        actor=shown,
        selection=where,
        counts={"failures": attempt.failures},
        result="wrong user name or password",
    )
    if attempt.locked_for is not None:
        log.warning("console.sign_in_locked", user=shown, address=address, seconds=attempt.locked_for)
        records.audit(
            "sign_in_locked",
            actor=shown,
            selection=where,
            counts={"failures": attempt.failures},
            result=f"locked for {attempt.locked_for:g} s",
        )
    return None
