"""`renewals demo`, the README's first run, end to end on the real broker: its table, and no
`renewals-demo-*` name left behind."""

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from support.services import rabbitmqctl_for
from worker.tools.demo import scenario

pytestmark = pytest.mark.other_brokers_slow  # the demo's own commands

ROOT = Path(__file__).resolve().parents[2]


def rabbitmqctl(amqp_url: str) -> list[str]:
    """The rabbitmqctl that manages the broker behind `amqp_url`: the host's, or a 4.x chroot's."""
    return list(rabbitmqctl_for(amqp_url))


def names_on(amqp_url: str, kind: str) -> list[str]:
    """Every queue or exchange name on the URL's vhost, as rabbitmqctl lists them."""
    vhost = unquote(urlsplit(amqp_url).path.removeprefix("/")) or "/"
    listed = subprocess.run(
        [*rabbitmqctl(amqp_url), "-q", f"list_{kind}", "-p", vhost, "name"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return [line.strip() for line in listed.stdout.splitlines()[1:] if line.strip()]


def test_demo_prints_its_table_and_leaves_nothing_behind(amqp_url: str) -> None:
    """`renewals demo` exits 0, prints one row per scenario event with the notifications and the
    dead letter the scenario expects, and deletes every queue and exchange it declared."""
    demo = subprocess.run(
        [sys.executable, "-m", "worker", "demo"],
        env={**os.environ, "RENEWALS_AMQP_URL": amqp_url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert demo.returncode == 0, demo.stderr
    assert "Traceback" not in demo.stderr
    lines = demo.stdout.splitlines()
    assert lines[0].split()[:4] == ["event", "client", "result", "resolved_from"]
    events = scenario()
    rows = lines[2 : 2 + len(events)]
    assert [row.split()[0] for row in rows] == [event["id"] for event in events]
    expected = [event.get("demoexpect") for event in events]
    assert lines[-1] == (
        f"notifications: {expected.count('notification')}, dead letters: {expected.count('no_recipient')}"
    )
    for row, event in zip(rows, events, strict=True):
        if event.get("demoexpect") == "no_recipient":
            assert "dead letter: no_recipient" in row, row
        elif event.get("demoexpect") == "notification":
            assert event["data"]["client_id"] in row and "not sent" not in row, row
    left = [name for kind in ("queues", "exchanges") for name in names_on(amqp_url, kind)]
    assert not [name for name in left if name.startswith("renewals-demo-")], left
