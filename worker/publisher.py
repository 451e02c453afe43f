"""Publishing a batch with publisher confirms: send all, then wait once for every confirm."""

import time
from collections.abc import Callable, Sequence
from typing import Any

import amqp
from amqp import spec

from worker.failures import PublishFailed
from worker.messages import Outgoing


class ConfirmingPublisher:
    """Owns its own connection: confirms are read here, never inside a consumer callback."""

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
        """Return once the broker has confirmed every message; raise PublishFailed otherwise."""
        if not messages:
            return
        first = self._next_tag
        for message in messages:
            self._channel.send_method(
                spec.Basic.Publish,
                "Bssbb",
                (0, message.exchange, message.routing_key, True, False),
                amqp.Message(message.body, **message.properties),
            )
        self._next_tag = first + len(messages)
        self._unconfirmed.update(range(first, self._next_tag))
        self._wait(while_waiting)

    def _wait(self, while_waiting: Callable[[], None]) -> None:
        deadline = time.monotonic() + self._timeout
        while self._unconfirmed and not self._refused:
            if self.blocked:  # a blocked broker confirms nothing; waiting is not failing
                deadline = time.monotonic() + self._timeout
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                count = len(self._unconfirmed)
                self._unconfirmed.clear()
                raise PublishFailed(f"{count} publishes not confirmed within {self._timeout:g}s")
            try:
                self._connection.drain_events(timeout=min(remaining, 1.0))
            except TimeoutError:
                while_waiting()
        if self._refused:
            refused, self._refused = self._refused, []
            self._unconfirmed.clear()
            raise PublishFailed("; ".join(refused[:5]))

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self._unconfirmed = {tag for tag in self._unconfirmed if tag > delivery_tag}
        else:
            self._unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._refused.append(f"broker nacked publish {delivery_tag}")
        self._on_ack(delivery_tag, multiple)

    def _on_return(
        self, reply_code: int, reply_text: str, exchange: str, routing_key: str, message: Any
    ) -> None:
        self._refused.append(f"unroutable: {reply_code} {reply_text} ({exchange!r}, {routing_key!r})")
