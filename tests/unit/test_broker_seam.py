"""The broker seam: the links raise a lost connection as `BrokerLost`, the one broker error the
running worker knows, and the log still names the client library's own error."""

from collections.abc import Callable, Sequence
from typing import Any

import pytest
from amqp.exceptions import AccessRefused, PreconditionFailed, RecoverableConnectionError

from worker.broker.links import AmqpPublishing, losses_translated
from worker.messaging import BrokerLost, ConsumerLost, Outgoing, Sent, described
from worker.service.runtime import BROKER_TROUBLE


class Failing:
    """A publisher whose every call raises `error`."""

    def __init__(self, error: BaseException) -> None:
        self._error = error

    def send(self, messages: Sequence[Outgoing]) -> Sent:
        raise self._error

    def wait_for(self, tag: int, *, while_waiting: Callable[[], None]) -> None:
        raise self._error

    def keep_alive(self) -> None:
        raise self._error

    def close(self) -> None:
        raise self._error


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(104, "Connection reset by peer"),
        RecoverableConnectionError("gone"),
        AccessRefused("no"),
    ],
)
def test_a_link_raises_a_lost_connection_as_broker_lost(error: BaseException) -> None:
    """py-amqp's and the socket's errors leave a link as BrokerLost, the library's error its cause."""
    publishing = AmqpPublishing(Failing(error))  # type: ignore[arg-type]
    calls: list[Callable[[], Any]] = [
        lambda: publishing.send([]),
        lambda: publishing.wait_for(1, while_waiting=lambda: None),
        publishing.keep_alive,
        publishing.close,
    ]
    for call in calls:
        with pytest.raises(BrokerLost) as raised:
            call()
        assert raised.value.__cause__ is error
        assert isinstance(raised.value, BROKER_TROUBLE)


def test_a_mismatched_queue_is_not_a_lost_connection() -> None:
    """PreconditionFailed (a queue declared with other arguments) is not translated: no reconnect cures it."""
    with pytest.raises(PreconditionFailed), losses_translated():
        raise PreconditionFailed("inequivalent arg 'x-queue-type'")


def test_the_log_names_the_library_error_behind_broker_lost() -> None:
    """`described` gives the original error's type and text, as the log wrote it before the seam."""
    try:
        with losses_translated():
            raise ConnectionRefusedError(111, "Connection refused")
    except BrokerLost as lost:
        assert described(lost) == "ConnectionRefusedError: [Errno 111] Connection refused"
    assert described(ConsumerLost("the broker cancelled the consumer")) == (
        "ConsumerLost: the broker cancelled the consumer"
    )
