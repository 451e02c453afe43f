"""The dead letters a worker recorded in its store, read the way tests read messages: each as
(None, properties, body), the properties with pika's attribute names (`headers` among them),
oldest first. An independent reader: its own store connection, never the worker's."""

import time
from types import SimpleNamespace
from typing import Any

from worker.dead_letters.model import STATUSES, LetterFilter, StoredLetter
from worker.dead_letters.records import DeadLetterRecords
from worker.store import open_store

EVERY = LetterFilter(statuses=frozenset(STATUSES))
_PROPERTY_NAMES = (
    "content_type", "content_encoding", "delivery_mode", "priority", "correlation_id", "reply_to",
    "expiration", "message_id", "timestamp", "type", "user_id", "app_id", "cluster_id",
)  # fmt: skip


def stored_letters(store_url: str, selection: LetterFilter = EVERY) -> list[StoredLetter]:
    """Every recorded letter (any status), oldest first."""
    store = open_store(store_url)
    try:
        return list(DeadLetterRecords(store).letters(selection))
    finally:
        store.close()


def as_message(letter: StoredLetter) -> tuple[None, Any, bytes]:
    """A recorded letter shaped as `Client.take` returns a message."""
    properties = {name: letter.properties.get(name) for name in _PROPERTY_NAMES}
    return None, SimpleNamespace(**properties, headers=letter.headers), letter.body


def recorded(
    store_url: str, count: int, timeout: float = 20.0, *, exactly: bool = True
) -> list[tuple[None, Any, bytes]]:
    """The recorded letters once there are `count` of them (or fail after `timeout`); with
    `exactly`, fail too if there are more."""
    deadline = time.monotonic() + timeout
    letters: list[StoredLetter] = []
    while time.monotonic() < deadline:
        try:
            letters = stored_letters(store_url)
        except Exception:  # the worker has not created the tables yet
            letters = []
        if len(letters) >= count:
            break
        time.sleep(0.05)
    assert len(letters) >= count, f"expected {count} recorded dead letters, got {len(letters)}"
    assert not exactly or len(letters) == count, f"expected {count} recorded dead letters, got {len(letters)}"
    return [as_message(letter) for letter in letters]
