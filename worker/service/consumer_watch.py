"""Whether the broker still delivers to the worker's consumer, not only whether it once did.

The broker says when it cancels a consumer (a server basic.cancel, `links.ConsumerLost`), but
not always: on RabbitMQ 3.10 a quorum queue deleted and at once declared again keeps the old
consumer as a ghost that takes deliveries and hands none over (issue 25). So while the worker
is idle, every `every` seconds, it asks the broker about its queue (a passive declare) and
calls the consumer lost if the queue is gone, if the broker counts no consumer on it, or if
messages have been ready at two checks in a row with none delivered between them.

What it cannot see: a ghost that still has credit takes every message as it comes, so the
queue shows nothing ready until the ghost holds `PREFETCH` messages; from then on the next
message waits in the queue and the second check after it calls the consumer lost.
"""

import time
from collections.abc import Callable

from worker.messaging import QueueState

WATCH_EVERY = 2.0
"""Seconds between two looks at the queue while the worker is idle."""


class ConsumerWatch:
    """`arrived()` on every delivery; `lost(state)` on idle turns: why the consumer is lost, or None."""

    def __init__(self, every: float = WATCH_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self._every = every
        self._clock = clock
        self.restart()

    def restart(self) -> None:
        """A consumer was just registered: the first look is `every` seconds away."""
        self._next = self._clock() + self._every
        self._delivered = False
        self._waiting_since: float | None = None

    def arrived(self) -> None:
        self._delivered = True
        self._waiting_since = None

    def due(self) -> bool:
        return self._clock() >= self._next

    def lost(self, state: QueueState | None) -> str | None:
        """Judge the queue's `state` (None: it is gone) after the last look; None if all is well."""
        now = self._clock()
        self._next = now + self._every
        delivered, self._delivered = self._delivered, False
        if state is None:
            return "its queue is gone"
        if state.consumers == 0:
            return "the broker counts no consumer on its queue"
        if state.ready == 0 or delivered:
            self._waiting_since = None
            return None
        if self._waiting_since is None:
            self._waiting_since = now
            return None
        return (
            f"{state.ready} message(s) ready and none delivered to this consumer for"
            f" {now - self._waiting_since:.1f}s"
        )
