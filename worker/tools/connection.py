"""One broker connection for the length of a command's `with` block, through the worker's own
broker layer (its URL lists, TLS settings and defensive reading). Leaving the block closes it,
whatever happened: the broker then takes back whatever was read and not acknowledged."""

from contextlib import suppress
from types import TracebackType
from typing import Self

from worker.broker.endpoints import Broker, BrokerUnreachable
from worker.broker.wire import Connection, FrameHandlerFactory
from worker.failures import broker_unreachable
from worker.tools.errors import ToolError


class ToolConnection:
    """`with Subclass(broker, ...) as tool:` connects; a broker out of reach is `unreachable`,
    the subclass's one-line error."""

    unreachable: type[ToolError] = ToolError

    def __init__(self, broker: Broker, *, frame_handler: FrameHandlerFactory | None = None) -> None:
        self._broker = broker
        self._frame_handler = frame_handler
        self._connection: Connection | None = None

    def __enter__(self) -> Self:
        try:
            self._connection, _ = self._broker.connect(frame_handler=self._frame_handler)
        except BrokerUnreachable as exc:
            raise self.unreachable(broker_unreachable(self._broker, exc)) from None
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self._connection is not None:
            with suppress(Exception):
                self._before_closing()
            with suppress(Exception):
                self._connection.close()
            with suppress(Exception):
                self._connection.collect()

    @property
    def broker(self) -> str:
        """The broker's URLs with their passwords masked."""
        return str(self._broker)

    def _before_closing(self) -> None:
        """What a subclass does on its open connection before it is closed."""
