"""The consumer watch: when the worker calls its consumer lost although the broker said nothing."""

from worker.messaging import QueueState
from worker.service.consumer_watch import ConsumerWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def watch() -> tuple[ConsumerWatch, Clock]:
    clock = Clock()
    return ConsumerWatch(every=2.0, clock=clock), clock


def test_the_first_look_comes_a_whole_interval_after_subscribing() -> None:
    """Right after a consumer is registered the watch is not due; `every` seconds later it is."""
    consumer, clock = watch()
    assert not consumer.due()
    clock.now += 2.0
    assert consumer.due()


def test_a_queue_that_is_gone_or_counts_no_consumer_means_the_consumer_is_lost() -> None:
    """A deleted queue, or one on which the broker counts no consumer, is a lost consumer at the first look."""
    consumer, _ = watch()
    assert consumer.lost(None) == "its queue is gone"
    assert consumer.lost(QueueState(ready=0, consumers=0)) == "the broker counts no consumer on its queue"


def test_messages_ready_at_two_looks_with_none_delivered_between_mean_a_ghost_consumer() -> None:
    """Ready messages at one look are patience; still ready at the next with nothing delivered
    between them, the consumer is lost (the 3.10 ghost of issue 25), and the reason says how long."""
    consumer, clock = watch()
    assert consumer.lost(QueueState(ready=200, consumers=1)) is None
    clock.now += 2.0
    why = consumer.lost(QueueState(ready=200, consumers=1))
    assert why == "200 message(s) ready and none delivered to this consumer for 2.0s"


def test_a_delivery_between_two_looks_or_an_empty_queue_keeps_the_consumer() -> None:
    """Ready messages while deliveries keep coming (a busy worker, a backlog) or none ready: all is well."""
    consumer, clock = watch()
    for _ in range(5):
        assert consumer.lost(QueueState(ready=500, consumers=1)) is None
        consumer.arrived()
        clock.now += 2.0
    assert consumer.lost(QueueState(ready=0, consumers=1)) is None
    clock.now += 2.0
    assert consumer.lost(QueueState(ready=0, consumers=3)) is None
