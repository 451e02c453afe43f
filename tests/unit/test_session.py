"""The session's rules without a broker: whole sessions on the in-memory broker's links
(`tests/memory_broker.py`) over a real SQLite store, built by the composition root's own
`build_services`. Before the broker seam, only end-to-end tests reached these."""

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from handlers import HANDLERS
from support.messages import contact, encode, renewal
from tests.memory_broker import MemoryBroker, MemoryDeliveries, memory_session
from worker import logs
from worker.app import build_services, build_worker
from worker.dead_letters.records import DeadLetterRecords
from worker.messaging import ConsumerLost, Delivery, PublishFailed
from worker.service.health import Health
from worker.service.metrics import Metrics
from worker.service.session import Services, StoppedDuringOutage
from worker.settings import Settings
from worker.store import OutboxRow, SqlStore, StoreUnavailable, open_store
from worker.store.connection import Direct

DANA = contact("dana", "client.example")


class Lines:
    """A logger that keeps (level, event, fields)."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda event, **fields: self.lines.append((level, event, fields))

    def events(self) -> list[str]:
        return [event for _, event, _ in self.lines]


@pytest.fixture(autouse=True)
def lines_through_the_logger() -> None:
    """Batch lines go through the session's logger (a `Lines` here), not the fast JSON path
    that writes to stderr, whatever an earlier test configured."""
    logs.configure("info", "console")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    store = open_store(f"sqlite:///{tmp_path / 'renewals.db'}")
    store.migrate()
    yield store
    store.close()


def services_over(store: SqlStore, log: Lines, **settings: Any) -> Services:
    return build_services(
        Settings(**settings),
        store,
        HANDLERS,
        metrics=Metrics("sqlite"),
        health=Health(60),
        log=log,  # type: ignore[arg-type]
    )


def notification_ids(broker: MemoryBroker) -> list[str]:
    return [json.loads(message.body)["id"] for message in broker.notifications()]


def test_a_batch_is_committed_then_published_and_acknowledged_only_once_confirmed(store: SqlStore) -> None:
    """One batch: the notification goes out, the invalid event and the one nobody owns are
    dead-lettered and recorded in the store; the deliveries are acknowledged (one multiple
    ack) after the confirms, and the letters after their insert."""
    log, broker = Lines(), MemoryBroker()
    broker.deliver(encode(renewal("c1", decision_maker=DANA)))
    broker.deliver(encode(renewal("c2")))  # owner 'platform', no decision maker: no_recipient
    broker.deliver(b"not json")
    session = memory_session(broker, services_over(store, log))

    session.run(broker.stop)

    assert broker.log[:5] == ["consume", "deliver [1, 2, 3]", "send 3", "confirmed 3", "ack 3"]
    assert broker.log[5].startswith("letters ack")  # after the insert of both letters
    assert len(notification_ids(broker)) == 1
    assert sorted(letter.reason for letter in DeadLetterRecords(store).page().letters) == [
        "invalid_json",
        "no_recipient",
    ]
    assert store.outbox_stats() == (0, None)  # the confirmed row was deleted at the stop
    assert [e for e in log.events() if e.startswith("worker.")] == ["worker.consuming", "worker.stopped"]


def test_a_refused_confirm_ends_the_session_unacknowledged_and_the_next_session_republishes_the_row(
    store: SqlStore,
) -> None:
    """The broker nacks: the session ends with PublishFailed and acknowledges nothing. The
    next session publishes the committed row again, with the same notification id, and the
    redelivered event is a duplicate: one notification, never two different ones."""
    log, broker = Lines(), MemoryBroker()
    broker.deliver(encode(renewal("c1", decision_maker=DANA)))
    broker.refuse_confirms = "broker nacked publish 1"
    services = services_over(store, log)
    first = memory_session(broker, services)
    with pytest.raises(PublishFailed):
        first.run(broker.stop)
    first.close()
    assert not any(entry.startswith("ack") for entry in broker.log)
    assert broker.queue[0].redelivered and broker.notifications() == []

    memory_session(broker, services).run(broker.stop)

    assert "outbox.republished" in log.events() and "message.duplicate_event" in log.events()
    [sent] = notification_ids(broker)
    [refused, republished] = broker.attempted
    assert refused.body == republished.body and json.loads(refused.body)["id"] == sent


def flaky(call: Callable[..., Any], failures: int) -> Callable[..., Any]:
    """`call`, raising StoreUnavailable the first `failures` times."""
    left = [failures]

    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if left[0] > 0:
            left[0] -= 1
            raise StoreUnavailable("the database went away")
        return call(*args, **kwargs)

    return wrapped


def test_while_the_store_is_away_the_session_takes_nothing_new_and_loses_nothing(store: SqlStore) -> None:
    """The batch's transaction finds the store gone: the session cancels its consumer (the
    dead-letter one too), keeps the deliveries in hand unacknowledged, reconnects with
    backoff, handles them once the store is back, and consumes again."""
    log, broker = Lines(), MemoryBroker()
    broker.deliver(encode(renewal("c1", decision_maker=DANA)))
    services = services_over(store, log)
    services.processor.process = flaky(services.processor.process, failures=2)  # type: ignore[method-assign]
    session = memory_session(broker, services)

    session.run(broker.stop)

    assert broker.log[:6] == ["consume", "deliver [1]", "cancel", "consume", "send 1", "confirmed 1"]
    assert "ack 1" in broker.log and len(notification_ids(broker)) == 1
    assert log.events().count("store.lost") == 1 and log.events().count("store.recovered") == 1
    assert services.health.store_answers
    assert services.metrics.reconnects.labels("store")._value.get() == 1


class CommitsWatched(Direct):
    """Each COMMIT made on the store's helper thread (`SqlConnection.writing(while_committing=)`):
    the deliveries the broker had been told were acknowledged when it began, and when it ended.
    The second such COMMIT waits (up to 2 s) for an acknowledgement to arrive meanwhile."""

    def __init__(self, broker: MemoryBroker, fail_with: Exception | None = None) -> None:
        self.broker, self.fail_with = broker, fail_with
        self.seen: list[tuple[int, int]] = []

    def acks(self) -> int:
        return sum(entry.startswith("ack ") for entry in self.broker.log)

    def execute(self, connection: Any, statement: str, params: Any) -> Any:
        if statement != "COMMIT" or not threading.current_thread().name.startswith("store-commit"):
            return super().execute(connection, statement, params)
        before, deadline = self.acks(), time.monotonic() + 2
        while len(self.seen) == 1 and self.acks() == before and time.monotonic() < deadline:
            time.sleep(0.001)
        self.seen.append((before, self.acks()))
        if self.fail_with is not None:
            raise self.fail_with
        return super().execute(connection, statement, params)


def test_the_batch_before_is_acknowledged_while_the_next_one_commits(tmp_path: Path) -> None:
    """Batch 2's COMMIT runs on the store's helper thread while the session settles batch 1
    (its confirms, its acknowledgement, its log lines): the wait for the disk is not idle time.
    Batch 2 is still published only once committed, and acknowledged only once confirmed."""
    log, broker = Lines(), MemoryBroker(batch_size=1)
    broker.deliver(encode(renewal("c1", decision_maker=DANA)))
    broker.deliver(encode(renewal("c2", decision_maker=DANA)))
    watched = CommitsWatched(broker)
    store = open_store(f"sqlite:///{tmp_path / 'renewals.db'}", runner=lambda _kind: watched)
    store.migrate()

    memory_session(broker, services_over(store, log)).run(broker.stop)
    store.close()

    assert watched.seen == [(0, 0), (0, 1)]  # batch 1 acknowledged during batch 2's COMMIT
    assert broker.log[:-1] == [  # "send n": n messages sent; "confirmed t": confirms up to publish t
        "consume",
        "deliver [1]",
        "send 1",
        "deliver [2]",
        "confirmed 1",  # batch 2 committing meanwhile
        "ack 1",
        "send 1",  # batch 2's notification, once its COMMIT is done
        "confirmed 2",
        "ack 2",
    ]
    assert len(notification_ids(broker)) == 2


def test_a_confirm_refused_while_the_next_batch_commits_ends_the_session_and_loses_nothing(
    store: SqlStore,
) -> None:
    """Batch 1's confirm is refused while batch 2 commits: the refusal is the session's, not
    batch 2's (which stays committed, and is not published); nothing is acknowledged, and the
    next session sends each notification once."""
    log, broker = Lines(), MemoryBroker(batch_size=1)
    broker.deliver(encode(renewal("c1", decision_maker=DANA)))
    broker.deliver(encode(renewal("c2", decision_maker=DANA)))
    services = services_over(store, log)
    first = memory_session(broker, services)
    original_collect = MemoryDeliveries.collect

    def refusing_once_batch_2_is_in(deliveries: MemoryDeliveries, first_wait: float) -> list[Delivery]:
        batch = original_collect(deliveries, first_wait)
        if [d.delivery_tag for d in batch] == [2]:
            broker.refuse_confirms = "broker nacked publish 1"
        return batch

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MemoryDeliveries, "collect", refusing_once_batch_2_is_in)
        with pytest.raises(PublishFailed):
            first.run(broker.stop)
    first.close()

    assert not any(entry.startswith("ack") for entry in broker.log)
    assert "message.retry_scheduled" not in log.events() and "message.dead_lettered" not in log.events()
    assert store.execute("SELECT count(*) FROM outbox").fetchone() == (2,)  # batch 2 committed too

    memory_session(broker, services).run(broker.stop)

    assert sorted(notification_ids(broker)) == sorted(set(notification_ids(broker)))
    assert len(notification_ids(broker)) == 2


def test_a_commit_that_fails_is_the_batchs_failure_not_the_work_done_meanwhile(tmp_path: Path) -> None:
    """The helper thread's COMMIT fails: the transaction raises that failure, once the work
    done meanwhile has run (once); nothing of the batch is kept."""
    watched = CommitsWatched(MemoryBroker(), fail_with=StoreUnavailable("the disk said no"))
    store = open_store(f"sqlite:///{tmp_path / 'renewals.db'}", runner=lambda _kind: watched)
    store.migrate()
    worked: list[str] = []

    settle = lambda _committing: worked.append("settled")  # noqa: E731
    with (
        pytest.raises(StoreUnavailable, match="the disk said no"),
        store.transaction(while_committing=settle) as transaction,
    ):
        transaction.record_events(["e1"], 1)

    assert worked == ["settled"] and len(watched.seen) == 1
    store.reconnect()  # as the session's store line does after StoreUnavailable
    assert store.execute("SELECT count(*) FROM inbox").fetchone() == (0,)
    store.close()


def test_asked_to_stop_while_the_store_is_away_the_session_ends_with_nothing_acknowledged(
    store: SqlStore,
) -> None:
    """Stopping during an outage raises StoppedDuringOutage out of the backoff: nothing in hand
    is acknowledged (the broker redelivers it to the next worker)."""
    log, broker = Lines(), MemoryBroker()
    broker.deliver(encode(renewal("c1", decision_maker=DANA)))
    services = services_over(store, log)
    services.processor.process = flaky(services.processor.process, failures=10**6)  # type: ignore[method-assign]
    store.reconnect = flaky(store.reconnect, failures=10**6)  # type: ignore[method-assign]
    session = memory_session(broker, services)
    threading.Timer(0.5, broker.stop.set).start()

    with pytest.raises(StoppedDuringOutage):
        session.run(broker.stop)

    assert not any(entry.startswith("ack") for entry in broker.log) and broker.published == []
    assert not services.health.store_answers and not services.health.consuming


def test_dead_letters_wait_in_their_queue_while_the_store_is_away(store: SqlStore) -> None:
    """A letter's insert finds the store gone: it stays unacknowledged until it is recorded."""
    log, broker = Lines(), MemoryBroker()
    broker.deliver(b"not json")
    session = memory_session(broker, services_over(store, log))
    records = session._drain._records
    records.insert = flaky(records.insert, failures=1)  # type: ignore[method-assign]

    session.run(broker.stop)

    letters_acked = [index for index, entry in enumerate(broker.log) if entry.startswith("letters ack")]
    assert len(letters_acked) == 1 and broker.log.index("consume", 2) < letters_acked[0]  # after the resume
    assert DeadLetterRecords(store).count() == 1


def test_a_redelivered_message_is_handled_alone_after_its_neighbours_are_settled(store: SqlStore) -> None:
    """A delivery that was in hand when a worker died may be what killed it: the batch before
    it is confirmed and acknowledged first, and it runs in a transaction of its own."""
    log, broker = Lines(), MemoryBroker()
    broker.deliver(encode(renewal("c1", decision_maker=DANA)))
    broker.deliver(encode(renewal("c2", decision_maker=DANA)))
    broker.queue[1] = broker.queue[1].__class__(**{**vars_of(broker.queue[1]), "redelivered": True})
    session = memory_session(broker, services_over(store, log))

    session.run(broker.stop)

    assert broker.log[:7] == [
        "consume",
        "deliver [1, 2]",
        "send 1",  # c1's notification
        "confirmed 1",
        "ack 1",  # settled before the redelivered one runs
        "send 1",
        "confirmed 2",
    ]
    assert len(notification_ids(broker)) == 2


def vars_of(delivery: Any) -> dict[str, Any]:
    return {name: getattr(delivery, name) for name in delivery.__slots__}


def test_housekeeping_republishes_the_rows_another_worker_left_behind(store: SqlStore) -> None:
    """An outbox row older than the grace period that no worker claimed (its worker died after
    the commit) is claimed by the sweep and published; once confirmed, it is deleted."""
    row = OutboxRow("n-orphan", "evt-gone", "notification.requested.both", b'{"id": "n-orphan"}')
    with store.transaction() as transaction:
        transaction.enqueue([row], 1)  # committed long ago
    log, broker = Lines(), MemoryBroker()
    session = memory_session(broker, services_over(store, log))

    session.run(broker.stop)

    assert [message.body for message in broker.published] == [b'{"id": "n-orphan"}']
    assert "outbox.orphans_republished" in log.events()
    assert store.outbox_stats() == (0, None)


def test_confirmed_rows_are_deleted_by_housekeeping_only_once_nothing_is_in_flight(store: SqlStore) -> None:
    """The outbox's deletions wait while a batch is in flight (its transaction deletes them);
    with nothing in flight they are a chore of their own, first, before the sweep."""
    log = Lines()
    services = services_over(store, log)
    with store.transaction() as transaction:
        [row] = transaction.enqueue([OutboxRow("n-1", "evt-1", "notification.requested.both", b"{}")], 1)
    assert row.seq is not None
    services.outbox.confirmed([row.seq])
    chores = services.housekeeping.chores
    names = [chore.__name__ for chore in chores(nothing_in_flight=False)]
    # the first look at the backlog (and for due scheduled replays) is due at once
    assert names == ["orphans", "_prune", "_look", "look"]
    due = chores(nothing_in_flight=True)
    assert [chore.__name__ for chore in due] == ["_delete_confirmed", "orphans", "_prune"]
    for chore in due:
        assert chore() == []  # the sweep finds nothing: the first chore deleted the row
    assert store.outbox_stats() == (0, None)


def test_a_consumer_the_broker_cancels_is_not_ready_at_once_and_everything_in_hand_is_settled(
    store: SqlStore,
) -> None:
    """The broker cancels the consumer after the first batch (its queue deleted) while more is
    in hand: /readyz is not ready from that moment, saying why; every delivery in hand is still
    handled, published and acknowledged; then the session ends with ConsumerLost."""
    log, broker = Lines(), MemoryBroker(batch_size=2, cancel_after=1)
    for n in range(5):
        broker.deliver(encode(renewal(f"c{n}", decision_maker=DANA)))
    services = services_over(store, log)
    session = memory_session(broker, services)

    with pytest.raises(ConsumerLost, match="cancelled"):
        session.run(broker.stop)

    ready, facts = services.health.ready()
    assert not ready and facts["consuming"] is False and "cancelled" in facts["consumer_lost"]
    assert len(notification_ids(broker)) == 5
    assert broker.log.index("cancelled by the broker") < broker.log.index("ack 5")
    assert "worker.consumer_lost" in log.events() and "worker.stopped" not in log.events()


def test_a_dead_letter_consumer_the_broker_cancels_ends_the_session_once_its_letters_are_recorded(
    store: SqlStore,
) -> None:
    """The broker cancels the drain's consumer (the dead-letter queue deleted): the letters in
    hand are recorded and acknowledged, the worker is not ready, and the session ends with
    ConsumerLost so that the next one subscribes again."""
    log, broker = Lines(), MemoryBroker(letters_cancelled=True, stop_when=lambda _broker: False)
    broker.deliver(encode(renewal("c1")))  # nobody to notify: dead-lettered by the worker
    services = services_over(store, log)
    session = memory_session(broker, services)

    with pytest.raises(ConsumerLost, match="dead-letter queue"):
        session.run(broker.stop)

    assert [letter.reason for letter in DeadLetterRecords(store).page().letters] == ["no_recipient"]
    assert any(entry.startswith("letters ack") for entry in broker.log)
    ready, facts = services.health.ready()
    assert not ready and "dead-letter queue" in facts["consumer_lost"]


def test_the_composition_root_runs_a_worker_on_the_in_memory_broker(store: SqlStore) -> None:
    """`build_worker` takes the broker's links, so the whole worker runs on the in-memory broker with no wiring by hand."""
    broker = MemoryBroker()
    broker.deliver(encode(renewal("c1", decision_maker=DANA)))
    broker.deliver(b"not json")

    build_worker(Settings(), store=store, links=broker).run(broker.stop)

    assert broker.log[:5] == ["consume", "deliver [1, 2]", "send 2", "confirmed 2", "ack 2"]
    assert len(notification_ids(broker)) == 1
    assert [letter.reason for letter in DeadLetterRecords(store).page().letters] == ["invalid_json"]
