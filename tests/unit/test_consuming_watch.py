"""The console's judgement of whether a worker consumes the input queue, on a clock the test
moves: no consumer is said at once; messages ready with nothing processed only after two looks
`stalled_after` apart; any progress (a shorter queue, a newer processed event) starts again."""

from worker.console.health import ConsumingWatch


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def watch(clock: Clock) -> ConsumingWatch:
    return ConsumingWatch("renewals.worker", stalled_after=10, clock=clock)


def test_no_consumer_is_said_at_the_first_look_naming_the_queue_and_the_fix() -> None:
    """0 consumers: red at once, whatever the queue holds, with the command that fixes it."""
    problem = watch(Clock()).judge(consumers=0, ready=0, last_processed=None)
    assert problem == "no worker consumes renewals.worker (0 consumers): start one (`renewals run`)"


def test_messages_ready_with_nothing_processed_turn_red_only_after_the_wait() -> None:
    """Ready messages, no progress: fine at the first look and 9 s later, red at 10 s, with the count and the wait."""
    clock = Clock()
    judge = watch(clock)
    assert judge.judge(consumers=1, ready=3, last_processed=5.0) is None
    clock.now += 9
    assert judge.judge(consumers=1, ready=3, last_processed=5.0) is None
    clock.now += 1
    problem = judge.judge(consumers=1, ready=4, last_processed=5.0)
    assert problem is not None and problem.startswith(
        "4 message(s) ready in renewals.worker and none processed for 10 s"
    )


def test_progress_or_an_empty_queue_starts_the_wait_again() -> None:
    """A newer processed event, a shorter queue or an empty one each reset the wait."""
    clock = Clock()
    judge = watch(clock)
    judge.judge(consumers=1, ready=3, last_processed=5.0)
    for ready, processed in ((3, 6.0), (2, 6.0), (0, 6.0), (5, 6.0)):
        clock.now += 15
        assert judge.judge(consumers=1, ready=ready, last_processed=processed) is None, (ready, processed)
    clock.now += 15
    assert judge.judge(consumers=1, ready=5, last_processed=6.0) is not None
