"""The red team's deep-header letter end to end (issue 25): a real worker process on the real
broker, the hostile letter written by a raw client (py-amqp's encoder cannot nest 900 deep).
Published upstream (an invalid event with `expiration: "100"` and a header 900 deep, which the
broker dead-letters with its headers intact) and published straight onto the dead-letter queue
(490 and 2,000 deep), between harmless letters: each is recorded, shown by `renewals dlq show`
and by the console (page and API), and the worker never exits, nor after a restart, when it
dead-letters the same event itself."""

import json
from pathlib import Path
from struct import pack

import pytest

from support.client import NAMES, Client
from support.console import VIEWER, basic, in_process
from support.nesting import depth_of
from support.polling import wait_until
from support.raw import Field, RawPublisher, nested, properties, table
from support.records import stored_letters
from tests.e2e.commands import ok, renewals
from tests.e2e.conftest import StartWorker
from worker.boundary import MARK, MAX_DEPTH

DLQ = NAMES.dead_letter_queue
SHORT = Field(b"s", pack(">h", 7))
INVALID_EVENT = b'{"specversion": "1.0", "id": "evt-deep", "source": "billing", "type": "RenewalApproaching"}'


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The worker's store, of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'renewals.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def harmless(name: str) -> bytes:
    return properties(
        content_type="application/json",
        message_id=name,
        application_headers={"x-error-reason": "invalid_json"},
    )


def deep_letter(name: str, depth: int, **extra: str) -> bytes:
    headers = table({"deep": nested(depth, SHORT)})
    return properties(content_type="application/json", message_id=name, application_headers=headers, **extra)


def test_deep_header_letters_are_recorded_and_shown_and_no_worker_exits(
    amqp_url: str, start_worker: StartWorker, client: Client, store: str, tmp_path: Path
) -> None:
    """An upstream event 900 deep that the broker expires into the dead-letter queue, and letters 490 and 2,000 deep sent straight there between harmless ones: all recorded and shown by dlq show and the console; the worker never exits, nor after a restart, when it dead-letters the same event itself."""
    worker = start_worker(RENEWALS_STORE_URL=store)
    pid = worker.pid
    worker.stop()  # the broker expires the upstream event while nobody consumes, as the red team did
    with RawPublisher(amqp_url) as raw:
        raw.publish(
            NAMES.events_exchange,
            "renewal.approaching",
            INVALID_EVENT,
            deep_letter("up-900", 900, expiration="100"),
        )
        wait_until(lambda: client.count(DLQ) == 1, "the broker dead-lettered the expired event", timeout=30)
        raw.publish("", DLQ, b'{"id": "before"}', harmless("before"))
        raw.publish("", DLQ, b'{"id": "dlq-490"}', deep_letter("dlq-490", 490))
        raw.publish("", DLQ, b'{"id": "dlq-2000"}', deep_letter("dlq-2000", 2000))
        raw.publish("", DLQ, b'{"id": "after"}', harmless("after"))
    worker.start()
    assert worker.pid != pid
    wait_until(lambda: client.count(DLQ) == 0 and len(stored_letters(store)) == 5, "5 dead letters recorded")
    letters = {json.loads(letter.body)["id"]: letter for letter in stored_letters(store)}
    assert set(letters) == {"evt-deep", "before", "dlq-490", "dlq-2000", "after"}
    upstream = letters["evt-deep"]
    assert upstream.summary.reason == "expired" and MARK in json.dumps(upstream.headers, default=str)
    assert MARK in json.dumps(letters["dlq-490"].headers, default=str)
    # 2,000 deep is past what py-amqp decodes: the worker's reader marks it, as any undecodable letter
    assert letters["dlq-2000"].summary.reason == "invalid_properties"
    assert "RecursionError" in (letters["dlq-2000"].problem or "")
    assert letters["before"].summary.reason == letters["after"].summary.reason == "invalid_json"
    console, _ = in_process(tmp_path / "console", [], store_url=store)
    for name, letter in letters.items():
        number = letter.summary.id
        shown = json.loads(
            ok(renewals(amqp_url, "dlq", "show", f"#{number}", "--json", RENEWALS_STORE_URL=store)).stdout
        )
        assert shown["position"] == number and depth_of(shown["headers"]) <= MAX_DEPTH
        assert ok(renewals(amqp_url, "dlq", "show", f"#{number}", RENEWALS_STORE_URL=store)).stdout
        api = console.get(f"/api/dead-letters/{number}", headers=basic(VIEWER))
        assert api.status_code == 200 and json.loads(api.json()["body"])["id"] == name
        assert console.get(f"/letters/{number}", headers=basic(VIEWER)).status_code == 200
    worker.check_alive()
    assert worker.stop() == 0
    worker.start()  # no crash loop: a restart consumes as before
    worker.wait_for("worker.consuming", count=2)
    with RawPublisher(amqp_url) as raw:  # and the same event, taken by the worker itself this time
        raw.publish(NAMES.events_exchange, "renewal.approaching", INVALID_EVENT, deep_letter("up-live", 900))
    wait_until(
        lambda: client.count(DLQ) == 0 and len(stored_letters(store)) == 6, "the worker's own dead letter"
    )
    [own] = [letter for letter in stored_letters(store) if letter.summary.message_id == "up-live"]
    assert own.summary.reason == "invalid_envelope"
    worker.check_alive()
