"""Handlers that inject failures. Only `python -m support.faulty_worker` runs them: the
production worker has no setting that loads code, and no failure switch."""

import os
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from events import OwnerChanged, RenewalApproaching
from handlers import Decision, Projection, on_owner_changed, on_renewal_approaching
from worker.dead_letters.model import NewLetter
from worker.dead_letters.records import DeadLetterRecords

KILLED_AFTER_RECORDING = 9  # the exit status of a worker that died between a commit and its ack


def fails_for_doomed_clients(
    event: RenewalApproaching, *, projection: Projection, now: datetime | None = None
) -> Decision:
    """A handler bug for clients named doomed-*; the real handler for everyone else."""
    if event.data.client_id.startswith("doomed-"):
        raise RuntimeError(f"injected failure for {event.data.client_id}")
    return on_renewal_approaching(event, projection=projection, now=now)


def crashes_for_poison_clients(
    event: RenewalApproaching, *, projection: Projection, now: datetime | None = None
) -> Decision:
    """The process dies (as on a segfault) on clients named poison-*."""
    if event.data.client_id.startswith("poison-"):
        os._exit(3)
    return on_renewal_approaching(event, projection=projection, now=now)


def slow(event: RenewalApproaching, *, projection: Projection, now: datetime | None = None) -> Decision:
    """The real handler, a millisecond slower: keeps a stream in flight long enough to disturb it."""
    time.sleep(0.001)
    return on_renewal_approaching(event, projection=projection, now=now)


def sluggish(event: RenewalApproaching, *, projection: Projection, now: datetime | None = None) -> Decision:
    """The real handler, ten milliseconds slower: a worker holds a burst unacknowledged for a
    while (long enough to delete its queue under it)."""
    time.sleep(0.01)
    return on_renewal_approaching(event, projection=projection, now=now)


def slow_owner_changes(
    event: OwnerChanged, *, projection: Projection, now: datetime | None = None
) -> Decision:
    """The real handler, a millisecond slower: widens the time between a batch's reads and its
    writes, so that batches of several workers on the same keys overlap."""
    time.sleep(0.001)
    return on_owner_changed(event, projection=projection, now=now)


def unencodable_for_long_causes(
    event: RenewalApproaching, *, projection: Projection, now: datetime | None = None
) -> Decision:
    """A handler bug for clients named unencodable-*: its notification names a cause of 300 bytes,
    which no AMQP correlation_id can hold (the model is bypassed, as only a bug would)."""
    decision = on_renewal_approaching(event, projection=projection, now=now)
    if decision.notification is not None and event.data.client_id.startswith("unencodable-"):
        notification = decision.notification.model_copy(update={"causation_id": "x" * 300})
        return replace(decision, notification=notification)  # the rest (the ledger's basis) as decided
    return decision


class DiesAfterRecording(DeadLetterRecords):
    """The real records; the process dies (as on SIGKILL) right after committing a dead letter
    whose body mentions `die-after-recording`, before the drain acknowledges it. The redelivered
    letter is already recorded, so the next worker records nothing new and lives."""

    def insert(self, letters: Sequence[NewLetter], *, at: datetime | None = None) -> int:
        fresh = super().insert(letters, at=at)
        if fresh and any(b"die-after-recording" in letter.body for letter in letters):
            os._exit(KILLED_AFTER_RECORDING)
        return fresh


RECORDS = {"dies_after_recording": DiesAfterRecording}
