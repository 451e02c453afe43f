"""The worker's reading path without a socket: its buffered transport over scripted `recv`
results, and a DeliveryReader on a stand-in connection. Unit tests feed them the bytes a broker
would send (support/raw.py lays them out)."""

from collections.abc import Iterable
from typing import Any

from worker.broker.wire import DeliveryReader, Frame, _Buffered
from worker.messaging import Delivery


class ByteSource(_Buffered):
    """The buffered transport over scripted socket reads: each item is what one `recv` returns,
    or raises; once they are used up, the socket has nothing more (a zero-timeout poll)."""

    def __init__(self, *reads: bytes | BaseException) -> None:
        self._start_buffer()
        self._reads = list(reads)

    def _quick_recv(self, size: int) -> bytes:
        if not self._reads:
            raise BlockingIOError
        item = self._reads.pop(0)
        if isinstance(item, BaseException):
            raise item
        return item


class Connection:
    """What py-amqp's own frame handler needs of a connection: its count of frames read."""

    bytes_recv = 0


class Reading:
    """A DeliveryReader on one connection; what it leaves to py-amqp is recorded in `others`."""

    def __init__(self) -> None:
        self.reader = DeliveryReader()
        self.connection = Connection()
        self.others: list[tuple[Any, ...]] = []
        self.on_frame = self.reader.frame_handler(self.connection, lambda *args: self.others.append(args))

    def feed(self, frames: Iterable[Frame]) -> list[bool]:
        return [self.on_frame(one) for one in frames]

    def read_bytes(self, *reads: bytes) -> list[Delivery]:
        """Frames read from the socket as the connection reads them, until nothing is left."""
        source = ByteSource(*reads)
        while True:
            try:
                self.on_frame(source.read_frame())
            except TimeoutError:
                return self.reader.arrived


def frames_of(data: bytes) -> list[Frame]:
    """The frames in `data`, as the buffered transport cuts them."""
    source, found = ByteSource(data), []
    while True:
        try:
            found.append(source.read_frame())
        except TimeoutError:
            assert not source._buffer, "bytes left over after the last frame"
            return found
