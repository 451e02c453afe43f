"""The fault runner's barrier between the stream's phases: a work queue counts as empty only when
the broker has said so for longer than its queue metrics can lag."""

from collections.abc import Iterator

from support.chaos.observe import settled


def readings(*depths: int) -> Iterator[dict[str, int]]:
    """What `rabbitmqctl list_queues` says of the worker queue, one reading after another."""
    for depth in depths:
        yield {"renewals.worker": depth}
    while True:
        yield {"renewals.worker": depths[-1]}


def test_a_queue_reported_empty_for_less_than_the_hold_is_not_settled() -> None:
    """Three empty readings and then 500 messages (a quorum queue's new leader reports 0 until its first metrics tick, seen on 3.10 while the old leader's node was down) do not pass the barrier."""
    said = readings(0, 0, 0, 500)
    assert not settled(lambda: next(said), ["renewals.worker"], hold=0.3, every=0.1)()


def test_a_queue_empty_for_the_whole_hold_is_settled() -> None:
    """A queue the broker reports empty at every reading for the whole hold passes the barrier."""
    said = readings(0)
    assert settled(lambda: next(said), ["renewals.worker"], hold=0.3, every=0.1)()


def test_a_broker_that_does_not_answer_is_not_settled() -> None:
    """A failed reading (a node restarting) does not pass the barrier."""

    def fails() -> dict[str, int]:
        raise RuntimeError("no node answered")

    assert not settled(fails, ["renewals.worker"], hold=0.3, every=0.1)()
