"""`--json` on the commands that change the broker, through the real broker: `send` says how
many events went to which exchange, `topology --declare` prints the plan it declared; each one
JSON object on stdout."""

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


def test_topology_declare_with_json_prints_one_object(amqp_url: str) -> None:
    """`topology --declare --json` prints the declared plan as one JSON object on stdout (what
    it did goes to stderr), so a script can parse it."""
    result = ok(renewals(amqp_url, "topology", "--declare", "--json"))
    plan = json.loads(result.stdout)
    assert {"rabbitmq", "exchanges", "queues", "bindings"} <= set(plan)
    assert "declared on" in result.stderr
