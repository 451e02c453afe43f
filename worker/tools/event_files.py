"""Publishing events from JSON or NDJSON files, as billing would: `renewals send`."""

import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

from events import InvalidInput, input_routing_key, parse
from worker import logs
from worker.broker.endpoints import Broker
from worker.broker.publisher import ConfirmingPublisher
from worker.messaging import PERSISTENT, Outgoing

CONTENT_TYPE = "application/cloudevents+json"


def read_events(stream: IO[str]) -> list[dict[str, Any]]:
    """A JSON object, a JSON array of objects, or one object per line (NDJSON)."""
    text = stream.read()
    stripped = text.lstrip()
    if not stripped:
        return []
    try:
        document = json.loads(text)
    except json.JSONDecodeError:
        return [_object(_line(line, number), number) for number, line in _lines(text)]
    if isinstance(document, list):
        return [_object(item, number) for number, item in enumerate(document, 1)]
    return [_object(document, 1)]


def complete(event: dict[str, Any], source: str) -> dict[str, Any]:
    """Fill in the CloudEvents attributes a hand-written trial file may leave out."""
    return {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": source,
        "time": datetime.now(UTC).isoformat(),
        **event,
    }


def check(events: Iterable[dict[str, Any]]) -> list[str]:
    """What the worker would dead-letter, one line per bad event (empty when all are good)."""
    problems = []
    for number, event in enumerate(events, 1):
        try:
            parse(json.dumps(event).encode(), CONTENT_TYPE)
        except InvalidInput as exc:
            problems.append(f"event {number} ({event.get('id')}): {exc.reason}: {exc.detail}")
    return problems


def publish(broker: Broker, exchange: str, events: Iterable[dict[str, Any]], *, batch: int = 500) -> int:
    """Publish persistently with confirms and `mandatory`, a batch at a time; an unroutable
    event is an error (PublishFailed)."""
    connection, _ = broker.connect()
    try:
        publisher = ConfirmingPublisher(
            connection, confirm_timeout=30.0, log=logs.get_logger("renewals.send")
        )
        messages = [_message(exchange, event) for event in events]
        for start in range(0, len(messages), batch):
            publisher.publish(messages[start : start + batch])
        return len(messages)
    finally:
        connection.close()


def _message(exchange: str, event: dict[str, Any]) -> Outgoing:
    type_name = str(event.get("type"))
    properties = {
        "content_type": CONTENT_TYPE,
        "delivery_mode": PERSISTENT,
        "message_id": str(event.get("id")),
        "type": type_name,
    }
    return Outgoing(
        exchange, input_routing_key(type_name) or "unknown", json.dumps(event).encode(), properties
    )


def _lines(text: str) -> Iterator[tuple[int, str]]:
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            yield number, line


def _line(line: str, number: int) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {number} is not JSON: {exc}") from None


def _object(item: Any, number: int) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValueError(f"item {number} is not a JSON object")
    return item
