"""A decided notification as bytes for the outbox, and an outbox row as a message to publish.

The envelope is written around the data's own JSON instead of building and dumping a second
model per notification; a unit test holds it equal to `NotificationRequested`'s own output.
"""

from datetime import datetime
from typing import Protocol

import orjson
from pydantic import AwareDatetime, TypeAdapter

from events import NOTIFICATION_REQUESTED, NotificationRequestedData, notification_routing_key
from worker.messaging import APP_ID, OUTPUT_CONTENT_TYPE, PERSISTENT, Outgoing, short_string
from worker.store import OutboxRow

_TIME: TypeAdapter[datetime] = TypeAdapter(AwareDatetime)


class Writer(Protocol):
    """What a batch asks of the notification writer: `NotificationWriter`, or a wrapper of it
    (tracing's, which writes each notification's trace context into its envelope)."""

    def row(self, data: NotificationRequestedData, time_json: bytes) -> OutboxRow: ...

    def check(self, data: NotificationRequestedData) -> None: ...

    def message(self, row: OutboxRow) -> Outgoing: ...


class NotificationWriter:
    """Serialises a batch's notifications; `source` names the worker in every envelope."""

    def __init__(self, source: str, exchange: str) -> None:
        self._head = b'{"specversion":"1.0","id":'
        self._source = _string(source)
        self._type = _string(NOTIFICATION_REQUESTED.type)
        self._exchange = exchange

    def row(self, data: NotificationRequestedData, time_json: bytes) -> OutboxRow:
        """The envelope around `data`, decided at the moment `time_json` (see `time_of`)."""
        body = b"".join(
            (
                self._head,
                _string(data.notification_id),
                b',"source":',
                self._source,
                b',"type":',
                self._type,
                b',"time":',
                time_json,
                b',"subject":',
                _string(data.client_id),
                b',"data":',
                data.__pydantic_serializer__.to_json(data),
                b"}",
            )
        )
        return OutboxRow(
            notification_id=data.notification_id,
            correlation_id=data.causation_id,
            routing_key=notification_routing_key(data.audience),
            body=body,
        )

    @staticmethod
    def check(data: NotificationRequestedData) -> None:
        """Unencodable if the notification's AMQP properties could not be written: checked before
        its batch commits, so that such a notification fails alone, as its event's failure."""
        short_string(data.notification_id, "message_id (the notification id)")
        short_string(data.causation_id, "correlation_id (the event id)")

    def message(self, row: OutboxRow) -> Outgoing:
        """The publish for an outbox row: persistent, ids in the AMQP properties."""
        return Outgoing(
            self._exchange,
            row.routing_key,
            row.body,
            {
                "content_type": OUTPUT_CONTENT_TYPE,
                "delivery_mode": PERSISTENT,
                "message_id": row.notification_id,
                "correlation_id": row.correlation_id,
                "type": NOTIFICATION_REQUESTED.type,
                "app_id": APP_ID,
            },
        )


def time_of(moment: datetime) -> bytes:
    """A moment as the envelope's `time` JSON value (once per batch, not per notification)."""
    return _TIME.dump_json(moment)


def _string(text: str) -> bytes:
    return orjson.dumps(text)
