"""Publishing with publisher confirms: send a batch, and wait for its confirms once, later."""

import time
from collections.abc import Callable, Sequence
from typing import Any

import amqp
from amqp import spec

from worker.service.failures import PublishFailed
from worker.service.messages import Outgoing


def _nothing() -> None:
    pass


class ConfirmingPublisher:
    """Owns its own connection: confirms are read here, never inside a consumer callback.

    `send` returns the last publish tag of what it sent; `wait_for(tag)` returns once every
    publish up to that tag is confirmed, so the worker can commit the next batch while the
    broker confirms this one.
    """

    def __init__(self, connection: amqp.Connection, *, confirm_timeout: float, log: Any) -> None:
        self._connection = connection
        self._channel = connection.channel()
        self._channel.confirm_select()
        self._channel.events["basic_ack"].add(self._on_ack)
        self._channel.events["basic_nack"].add(self._on_nack)
        self._channel.events["basic_return"].add(self._on_return)
        self._timeout = confirm_timeout
        self._log = log
        self._next_tag = 1
        self._low = 1  # every publish tag below this is confirmed
        self._unconfirmed: set[int] = set()
        self._refused: list[str] = []
        self.blocked = False

    def on_blocked(self, reason: str) -> None:
        self.blocked = True
        self._log.warning("broker.blocked", reason=reason)

    def on_unblocked(self) -> None:
        self.blocked = False
        self._log.info("broker.unblocked")

    def publish(
        self, messages: Sequence[Outgoing], *, while_waiting: Callable[[], None] = lambda: None
    ) -> None:
        """Send and wait: return once the broker has confirmed every message."""
        self.wait_for(self.send(messages), while_waiting=while_waiting)

    def send(self, messages: Sequence[Outgoing]) -> int:
        """Publish with `mandatory`, without waiting; the tag to `wait_for`."""
        for message in messages:
            self._channel.send_method(
                spec.Basic.Publish,
                "Bssbb",
                (0, message.exchange, message.routing_key, True, False),
                amqp.Message(message.body, **message.properties),
            )
        first = self._next_tag
        self._next_tag += len(messages)
        self._unconfirmed.update(range(first, self._next_tag))
        return self._next_tag - 1

    def wait_for(self, tag: int, *, while_waiting: Callable[[], None] = _nothing) -> None:
        """Return once every publish up to `tag` is confirmed; PublishFailed on a nack, a
        return, or no confirm within the timeout (not counted while the broker blocks us)."""
        deadline = time.monotonic() + self._timeout
        while self._low <= tag and not self._refused:
            if self.blocked:  # a blocked broker confirms nothing; waiting is not failing
                deadline = time.monotonic() + self._timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishFailed(f"publishes up to {tag} not confirmed within {self._timeout:g}s")
            try:
                self._connection.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                while_waiting()
        if self._refused:
            refused, self._refused = self._refused, []
            raise PublishFailed("; ".join(refused[:5]))

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            for tag in range(self._low, delivery_tag + 1):
                self._unconfirmed.discard(tag)
        else:
            self._unconfirmed.discard(delivery_tag)
        while self._low < self._next_tag and self._low not in self._unconfirmed:
            self._low += 1

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._refused.append(f"broker nacked publish {delivery_tag}")
        self._on_ack(delivery_tag, multiple)

    def _on_return(
        self, reply_code: int, reply_text: str, exchange: str, routing_key: str, message: Any
    ) -> None:
        self._refused.append(f"unroutable: {reply_code} {reply_text} ({exchange!r}, {routing_key!r})")
