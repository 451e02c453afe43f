"""Publishing events from JSON or NDJSON files, as billing would: `renewals send`."""

import json
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Any

import pika

from events import InvalidInput, input_routing_key, parse

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


def publish(amqp_url: str, exchange: str, events: Iterable[dict[str, Any]]) -> int:
    """Publish persistently with confirms and `mandatory`; an unroutable event is an error."""
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        count = 0
        for event in events:
            channel.basic_publish(
                exchange,
                input_routing_key(str(event.get("type"))) or "unknown",
                json.dumps(event).encode(),
                pika.BasicProperties(
                    content_type=CONTENT_TYPE,
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=str(event.get("id")),
                    type=str(event.get("type")),
                ),
                mandatory=True,
            )
            count += 1
        return count
    finally:
        connection.close()


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
