"""The deliveries link's `read_ahead` on the real broker: what the session calls while a batch's
COMMIT waits for the disk (`WorkerSession._while_committing`), so that the next batch is read
from the socket then, not after."""

import time
from collections.abc import Iterator

import pytest

from support.client import Client
from support.messages import renewal
from worker import logs
from worker.app import AmqpLinks
from worker.broker.endpoints import from_settings
from worker.service.ports import Linked
from worker.settings import Settings

pytestmark = [pytest.mark.broker, pytest.mark.any_broker]


@pytest.fixture
def linked(amqp_url: str) -> Iterator[Linked]:
    """A session's three links, consuming, in batches of three."""
    settings = Settings(amqp_url=amqp_url, batch_size=3)
    links = AmqpLinks(settings, from_settings(settings), logs.get_logger("test"))
    linked = links.connect(0)
    linked.deliveries.consume()
    yield linked
    for link in (linked.deliveries, linked.publisher, linked.letters):
        link.close()


def test_read_ahead_reads_what_arrives_until_a_batch_is_in_hand(amqp_url: str, linked: Linked) -> None:
    """Asked to read for up to 10 s, it returns as soon as a batch (three) has arrived, and the
    next `collect` hands that batch out without waiting for the broker."""
    client = Client(amqp_url)
    client.publish(renewal(f"c{n}") for n in range(3))
    client.close()
    began = time.monotonic()

    linked.deliveries.read_ahead(lambda: time.monotonic() < began + 10)

    assert time.monotonic() - began < 5
    assert len(linked.deliveries.collect(first_wait=0.0)) == 3


def test_read_ahead_stops_once_the_commit_is_done(linked: Linked) -> None:
    """Nothing arrives: it reads only while `until_false()` holds (the COMMIT is under way)."""
    began = time.monotonic()

    linked.deliveries.read_ahead(lambda: time.monotonic() < began + 0.2)

    assert 0.2 <= time.monotonic() - began < 1.0
    assert linked.deliveries.collect(first_wait=0.0) == []
