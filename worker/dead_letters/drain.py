"""The worker drains the dead-letter queue into its store: consume, insert, commit, then ack.

The queue stays the transport (the worker's failure path and the broker's delivery limit both
dead-letter into it), and is normally empty: every letter in it, whoever put it there and
whichever release, becomes a row of `DeadLetterRecords` once.

- Letters are consumed on a connection of their own (`worker.broker.links.AmqpLetters`),
  taken a batch at a time from the session's loop, recorded in one transaction, and
  acknowledged (one `multiple` ack) after the commit. Nothing is published or acknowledged
  from a callback inside `drain_events`.
- Killed between the commit and the ack, the same letters come back and insert nothing: a
  letter's identity is its body, properties and headers (`NewLetter.key`).
- While the store is away the drain stops consuming (`pause`): letters wait in the queue, and
  those in hand stay unacknowledged, never rejected or requeued (on RabbitMQ 4.0-4.2 each
  return counts toward the queue's delivery limit).
- Bodies are stored whole up to MAX_STORED_BODY (16 MiB, RabbitMQ 4.x's own default largest
  message), a `too_large` letter among them: what an operator needs to mend and re-send it. A
  longer body (only a broker configured for larger messages lets one through) keeps its first
  MAX_STORED_BODY bytes, its full size and its SHA-256, and is shown and exported but never
  replayed. Memory is bounded by the prefetch: at most PREFETCH letters in hand.
- Properties and headers pass `worker.boundary.bounded` (depth and size) before anything reads
  them, and each letter is read inside `worker.boundary.guarded`: a letter that still cannot be
  read is recorded alone, set aside with its body and why (`problem`; logged as
  `dead_letter.set_aside`), and its neighbours go on.
"""

import hashlib
import time
from collections.abc import Callable
from typing import Any

from worker.boundary import SET_ASIDE, aside, bounded, guarded
from worker.dead_letters.letter import PROPERTY_NAMES, DeadLetter
from worker.dead_letters.model import NewLetter
from worker.dead_letters.records import DeadLetterRecords
from worker.dead_letters.values import text
from worker.logs import Logger
from worker.messaging import Delivery
from worker.service.ports import LetterQueue
from worker.store import SqlStore

PREFETCH = 10  # letters in hand at most (each at most the broker's largest message)
MAX_STORED_BODY = 16 * 1024 * 1024
PUMP_EVERY = 0.1  # seconds between looks at the dead-letter connection while busy
PUMP_FOR = 0.2  # seconds a look may go on recording while letters keep coming (a backlog)
NEXT_WAIT = 0.05  # seconds to wait for the next letters after an ack, within PUMP_FOR

Records = Callable[[SqlStore], DeadLetterRecords]


def new_letter(delivery: Delivery) -> NewLetter:
    """A delivery from the dead-letter queue as the store records it (its properties and
    headers bounded); a delivery that cannot be read is set aside (`set_aside`)."""
    return guarded(lambda: _read(delivery), lambda why: set_aside(delivery, why))


def set_aside(delivery: Delivery, why: str) -> NewLetter:
    """A letter that could not be read, recorded alone: its body, none of its properties or
    headers, and why in `problem` (its reason reads as invalid_properties)."""
    body, size, digest = _body(delivery)
    problem = aside(why)
    return NewLetter(
        body=body,
        properties={},
        headers={},
        reason="invalid_properties",
        detail=problem,
        failed_at=None,
        attempts=None,
        replays=0,
        event_id=None,
        event_type=None,
        message_id=None,
        origin=None,
        body_size=size,
        body_sha256=digest,
        problem=problem,
    )


def _read(delivery: Delivery) -> NewLetter:
    properties: dict[str, Any] = bounded(
        {name: delivery.properties[name] for name in PROPERTY_NAMES if name in delivery.properties}
    )
    headers: dict[str, Any] = bounded(dict(delivery.headers))
    body, size, digest = _body(delivery)
    letter = DeadLetter.read(0, {**properties, "headers": headers}, body, delivery.problem)
    recorded = NewLetter(
        body=body,
        properties=properties,
        headers=headers,
        reason=letter.reason,
        detail=letter.detail,
        failed_at=letter.failed_at,
        attempts=letter.attempts,
        replays=letter.replay_count,
        event_id=letter.id,
        event_type=letter.type,
        message_id=text(properties.get("message_id")),
        origin=letter.origin,
        trace_parent=text(headers.get("traceparent")),
        body_size=size,
        body_sha256=digest,
        problem=delivery.problem,
    )
    recorded.key  # noqa: B018  # its identity is computed here, inside the guard, not first at the insert
    return recorded


def _body(delivery: Delivery) -> tuple[bytes, int | None, str | None]:
    """The body as stored, with its full size and SHA-256 when it was cut."""
    raw = delivery.body
    if len(raw) > MAX_STORED_BODY:  # kept cut: no second copy of the whole body is ever made
        return bytes(memoryview(raw)[:MAX_STORED_BODY]), len(raw), hashlib.sha256(raw).hexdigest()
    return (raw if isinstance(raw, bytes) else bytes(raw)), None, None


class DeadLetterDrain:
    """Moves letters from the dead-letter queue into the store, from the session's loop."""

    def __init__(self, queue: LetterQueue, records: DeadLetterRecords, *, name: str, log: Logger) -> None:
        self._queue = queue
        self._records = records
        self._name = name
        self._log = log
        self._next_pump = 0.0

    def resume(self) -> None:
        """Consume the dead-letter queue (again)."""
        self._queue.resume()

    def pause(self) -> None:
        """Take no more letters; those in hand stay unacknowledged until they are recorded."""
        self._queue.pause()

    def due(self) -> bool:
        return time.monotonic() >= self._next_pump

    def take(self, wait: float = 0.0) -> list[Delivery]:
        """The letters that have arrived (waiting up to `wait` for the first)."""
        self._next_pump = time.monotonic() + PUMP_EVERY
        return self._queue.take(wait)

    def record(self, letters: list[Delivery]) -> int:
        """Insert the letters in one transaction; how many were new. Then link those that are
        replays' copies to the letters they came from, which failed again (idempotent: letters
        drained again after a kill complete the links). Raises StoreUnavailable for the
        session's store line to wait out and call again."""
        recorded = [new_letter(delivery) for delivery in letters]
        for letter in recorded:
            if (letter.problem or "").startswith(SET_ASIDE):
                self._log.warning("dead_letter.set_aside", problem=letter.problem, queue=self._name)
        fresh = self._records.insert(recorded)
        linked = self._records.came_back(recorded)
        if linked:
            self._log.info("dead_letter.failed_again", count=linked, queue=self._name)
        return fresh

    def acknowledge(self, letters: list[Delivery], fresh: int) -> None:
        """After the commit: the letters leave the queue."""
        self._queue.acknowledge(letters[-1].delivery_tag)
        self._log.info("dead_letter.recorded", count=len(letters), new=fresh, queue=self._name)

    def keep_alive(self) -> None:
        self._queue.keep_alive()

    def close(self) -> None:
        self._queue.close()
