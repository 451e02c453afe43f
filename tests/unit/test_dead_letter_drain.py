"""The worker's dead-letter drain without a broker: how a delivery becomes a record, and the
order of insert and ack, over a fake connection."""

import hashlib
from datetime import UTC, datetime
from typing import Any

from worker.broker.links import AmqpLetters
from worker.dead_letters.drain import MAX_STORED_BODY, DeadLetterDrain, new_letter
from worker.dead_letters.model import NewLetter
from worker.messaging import Delivery

DEATH = {
    "x-death": [
        {
            "count": 2,
            "reason": "delivery_limit",
            "queue": "renewals.worker",
            "time": datetime(2026, 11, 20, 9, 5, tzinfo=UTC),
            "exchange": "renewals.events",
            "routing-keys": ["renewal.approaching"],
        }
    ],
    "x-delivery-count": 3,
}
BODY = b'{"id": "evt-1", "type": "RenewalApproaching", "data": {}}'


def delivery(
    body: bytes = BODY, headers: dict[str, Any] | None = None, tag: int = 1, **properties: Any
) -> Delivery:
    fields = {"content_type": "application/json", "delivery_mode": 2, **properties}
    if headers is not None:
        fields["application_headers"] = headers
    return Delivery(body, fields, "", "renewals.worker.dlq", tag)


def test_a_broker_dead_letter_becomes_a_delivery_limit_record() -> None:
    """x-death gives the reason, the failure time and the origin; the body is kept whole."""
    letter = new_letter(delivery(headers=DEATH))
    assert (letter.reason, letter.event_id, letter.event_type) == (
        "delivery_limit",
        "evt-1",
        "RenewalApproaching",
    )
    assert letter.failed_at == datetime(2026, 11, 20, 9, 5, tzinfo=UTC)
    assert letter.origin == ("renewals.events", "renewal.approaching")
    assert letter.body == BODY and letter.body_size is None and letter.body_sha256 is None


def test_a_redelivery_is_the_same_letter() -> None:
    """The broker's delivery counters do not change a letter's identity; anything else does."""
    once = new_letter(delivery(headers=DEATH))
    again = new_letter(delivery(headers={**DEATH, "x-delivery-count": 9, "x-acquired-count": 4}, tag=7))
    other = new_letter(delivery(headers={**DEATH, "x-dead-letter-id": "b"}))
    assert once.key == again.key != other.key


def test_a_body_over_the_stored_bound_keeps_its_start_size_and_digest() -> None:
    """Over 16 MiB: the first 16 MiB, the full size and the SHA-256 of the whole."""
    body = b"x" * (MAX_STORED_BODY + 10)
    letter = new_letter(delivery(body=body, headers={"x-error-reason": "too_large"}))
    assert len(letter.body) == MAX_STORED_BODY
    assert (letter.body_size, letter.body_sha256) == (len(body), hashlib.sha256(body).hexdigest())
    longer = new_letter(delivery(body=body + b"y", headers={"x-error-reason": "too_large"}))
    assert longer.key != letter.key  # the digest of the whole tells them apart


def test_properties_that_could_not_be_decoded_are_named_as_the_problem() -> None:
    """A delivery the broker layer could not decode keeps its problem and reads as invalid_properties."""
    broken = Delivery(BODY, {}, "", "renewals.worker.dlq", 1, problem="UnicodeDecodeError: bad name")
    letter = new_letter(broken)
    assert (letter.reason, letter.problem, letter.properties, letter.headers) == (
        "invalid_properties",
        "UnicodeDecodeError: bad name",
        {},
        {},
    )


class FakeChannel:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def basic_qos(self, *args: Any) -> None:
        self.calls.append(("qos", *args))

    def basic_consume(self, queue: str, callback: Any, on_cancel: Any = None) -> str:
        self.calls.append(("consume", queue))
        return "tag-1"

    def basic_cancel(self, tag: str) -> None:
        self.calls.append(("cancel", tag))

    def basic_ack(self, tag: int, multiple: bool = False) -> None:
        self.calls.append(("ack", tag, multiple))


class FakeConnection:
    """Deliveries "arrive" when the drain reads the connection."""

    def __init__(self, reader: Any, waiting: list[Delivery]) -> None:
        self.channel_ = FakeChannel()
        self._reader, self._waiting = reader, waiting

    def channel(self) -> FakeChannel:
        return self.channel_

    def drain_buffered(self) -> None:
        self._reader.arrived.extend(self._waiting)
        self._waiting.clear()

    def drain_events(self, timeout: float) -> None:
        raise TimeoutError

    def heartbeat_tick(self) -> None:
        pass


class FakeReader:
    def __init__(self) -> None:
        self.arrived: list[Delivery] = []


class FakeRecords:
    def __init__(self, calls: list[tuple[Any, ...]]) -> None:
        self.calls = calls

    def insert(self, letters: list[NewLetter]) -> int:
        self.calls.append(("insert", [letter.event_id for letter in letters]))
        return len(letters)

    def came_back(self, letters: list[NewLetter]) -> int:
        return 0  # no replay's copy among them


def test_letters_are_acknowledged_once_after_their_insert_and_pausing_stops_consuming() -> None:
    """Over py-amqp's calls (the real link, `AmqpLetters`): take, record, then one multiple ack
    up to the last tag; pause cancels the consumer and resume consumes again."""
    reader = FakeReader()
    waiting = [delivery(headers=DEATH, tag=tag) for tag in (1, 2, 3)]
    connection = FakeConnection(reader, waiting)
    calls = connection.channel_.calls
    records = FakeRecords(calls)
    letters = AmqpLetters(connection, reader, queue="renewals.worker.dlq", prefetch=10, read_every=0.1)  # type: ignore[arg-type]
    drain = DeadLetterDrain(letters, records, name="renewals.worker.dlq", log=Quiet())  # type: ignore[arg-type]
    drain.resume()
    drain.resume()  # already consuming: nothing more
    taken = drain.take()
    assert [letter.delivery_tag for letter in taken] == [1, 2, 3] and drain.take() == []
    fresh = drain.record(taken)
    drain.acknowledge(taken, fresh)
    drain.pause()
    drain.resume()
    assert [call[0] for call in calls] == ["qos", "consume", "insert", "ack", "cancel", "consume"]
    assert ("ack", 3, True) in calls


class Quiet:
    def info(self, *args: Any, **fields: Any) -> None:
        pass
