"""Billing for the fault runner: publishes the stream, phase by phase, paced, with publisher
confirms, through whichever node of the broker answers. A message is done only once the
broker confirmed it; when the connection goes (a broker restart, a node stop, a connection
closed by the broker) billing reconnects and sends every unconfirmed message again, with its
event id unchanged (the worker's inbox absorbs the repeat).

Frames are written by hand (`support.raw`), so bad AMQP properties go out as they are.
"""

import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

from support.amqp import connect
from support.chaos.stream import Message
from support.raw import properties, publish_frames

BILLING = "chaos-billing"
"""Billing's connection_name: the runner never closes this connection (it closes workers')."""
NO_CONFIRM_TIMEOUT = 30.0
"""Seconds without any confirm before a connection is taken for dead."""


class Billing(threading.Thread):
    """`between_phases` runs once every message of a phase is confirmed (a barrier)."""

    def __init__(
        self,
        urls: Sequence[str],
        phases: Sequence[Sequence[Message]],
        per_second: float,
        between_phases: Callable[[], None],
        *,
        exchange: str,
        window: int = 200,
        give_up_after: float = 300.0,
    ) -> None:
        super().__init__(daemon=True, name="billing")
        self.urls, self.phases, self.per_second = list(urls), phases, per_second
        self.between_phases, self.exchange, self.window = between_phases, exchange, window
        self.give_up_after = give_up_after
        self.confirmed = self.connections = self.resent = self.returned = 0
        self.error: BaseException | None = None
        self._connection: Any = None  # py-amqp ships no type hints: its objects are Any here
        self._channel: Any = None
        self._node = 0
        self._pending: dict[int, Message] = {}  # publish tag -> message, on this channel
        self._refused: list[Message] = []
        self._next_tag = 1

    def run(self) -> None:
        try:
            for number, phase in enumerate(self.phases):
                self._publish(phase)
                if number + 1 < len(self.phases):
                    self.between_phases()
        except BaseException as exc:  # reported by the runner through .error
            self.error = exc
        finally:
            self._drop()

    def _publish(self, messages: Sequence[Message]) -> None:
        started = time.monotonic()
        for index, message in enumerate(messages):
            ahead = started + index / self.per_second - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
            self._send(message)
            while len(self._pending) >= self.window or self._refused:
                self._wait_for_confirms()
        while self._pending or self._refused:
            self._wait_for_confirms()

    def _send(self, message: Message) -> None:
        while True:
            try:
                if self._connection is None:
                    self._reconnect()
                self._write(message)
                return
            except Exception:  # the connection went away mid-write: reconnect, send again
                self._drop()

    def _write(self, message: Message) -> None:
        fields = dict(message.properties)
        if message.raw_headers is not None:
            fields["application_headers"] = message.raw_headers
        frames = publish_frames(
            self._channel.channel_id,
            self._connection.frame_max,
            self.exchange,
            message.routing_key,
            message.body,
            properties(**fields),
        )
        self._pending[self._next_tag] = message
        self._next_tag += 1
        self._connection.transport.write(frames)

    def _wait_for_confirms(self) -> None:
        try:
            if self._connection is None:
                self._reconnect()
            for message in self._refused:
                self._write(message)
            self._refused = []
            deadline = time.monotonic() + NO_CONFIRM_TIMEOUT
            before = len(self._pending)
            while len(self._pending) == before and not self._refused:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no confirm in {NO_CONFIRM_TIMEOUT:g}s")
                with suppress(TimeoutError):
                    self._connection.drain_events(timeout=1.0)
        except Exception:
            self._drop()

    def _reconnect(self) -> None:
        """Connect to the next node that answers; send again what the last one never confirmed."""
        unconfirmed = [self._pending[tag] for tag in sorted(self._pending)] + self._refused
        self._pending, self._refused = {}, []
        deadline = time.monotonic() + self.give_up_after
        while True:
            url = self.urls[self._node % len(self.urls)]
            try:
                self._connection = connect(url, name=BILLING)
                self._channel = self._connection.channel()
                self._channel.confirm_select()
                break
            except Exception:
                self._drop()
                self._node += 1
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        self._channel.events["basic_ack"].add(self._on_ack)
        self._channel.events["basic_nack"].add(self._on_nack)
        self._channel.events["basic_return"].add(self._on_return)
        self._next_tag = 1
        self.connections += 1
        self.resent += len(unconfirmed)
        for message in unconfirmed:
            self._write(message)

    def _drop(self) -> None:
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None:
            with suppress(Exception):
                connection.collect()

    def _on_ack(self, tag: int, multiple: bool) -> None:
        done = [t for t in self._pending if t <= tag] if multiple else [tag]
        for t in done:
            if self._pending.pop(t, None) is not None:
                self.confirmed += 1

    def _on_nack(self, tag: int, multiple: bool) -> None:
        done = [t for t in self._pending if t <= tag] if multiple else [tag]
        self._refused += [self._pending.pop(t) for t in done if t in self._pending]

    def _on_return(self, *_: Any) -> None:
        self.returned += 1  # mandatory and unroutable: the checker finds the message lost
