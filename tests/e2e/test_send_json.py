"""`renewals send --json` through the real broker: one JSON object saying how many events went
to which exchange, and they are there."""

import json
from pathlib import Path

import pytest

from support.client import NAMES, Client
from tests.e2e.commands import ok, renewals

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here

EXAMPLE = str(Path(__file__).resolve().parents[2] / "examples" / "renewal-approaching.json")


def test_send_with_json_says_what_it_sent_as_one_object(client: Client, amqp_url: str) -> None:
    """`send FILE --json` prints {"sent": 1, "exchange": ...} and the event is in the input queue."""
    ok(renewals(amqp_url, "topology", "--declare"))
    said = json.loads(ok(renewals(amqp_url, "send", EXAMPLE, "--json")).stdout)
    assert said == {"sent": 1, "exchange": NAMES.events_exchange}
    assert client.count(NAMES.queue) == 1
