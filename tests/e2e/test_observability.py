"""Metrics and health through the real worker process: what a scrape says after known traffic,
and readiness following the consumer and the store."""

import json
import re
import sqlite3
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from support.client import NAMES, Client
from support.messages import contact, owner_changed, renewal
from support.polling import wait_until
from support.services import free_port, rabbitmqctl_for

DORA = contact("dora", "client.example")
ALICE = contact("alice")
ROOT = Path(__file__).resolve().parents[2]


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, for every sample line of a Prometheus text scrape."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def canonical(worker) -> list[str]:
    """The event names of the worker's canonical lines (one per message) so far."""
    return [
        r["event"]
        for r in worker.lines()
        if r.get("event", "").startswith(("renewal.", "owner.", "message."))
    ]


@pytest.mark.other_brokers_slow
def test_a_scrape_counts_exactly_what_the_log_lines_say(client: Client, start_worker) -> None:
    """After a known stream (notifications of each audience, a repeat, a stale change, dead letters),
    every counter moved by exactly the expected amount, and agrees with the worker's log lines."""
    port = free_port()
    worker = start_worker(RENEWALS_METRICS_PORT=str(port))
    out = client.observe()
    client.publish(
        [
            owner_changed("platform", "p1", partner_contact=ALICE, id="o1", time="2026-11-20T10:00:00+00:00"),
            owner_changed("partner", "p1", partner_contact=ALICE, id="o0", time="2026-11-20T09:00:00+00:00"),
            renewal("c1", "p1", decision_maker=DORA, id="r1"),  # both, partner_default
            renewal("c2", "p1", id="r2"),  # partner_contact (fallback), partner_default
            renewal("c3", None, decision_maker=DORA, id="r3"),  # decision_maker, system_default
            renewal("c3", None, decision_maker=DORA, id="r3"),  # the same event again
            renewal("c4", "p-none", id="r4"),  # no_recipient
        ]
    )
    client.publish([b"{not json"], content_type="application/json")
    client.take(out, 3)
    worker.wait_for("message.dead_lettered", count=2)
    wait_until(lambda: len(canonical(worker)) >= 8, "eight canonical lines")
    status, text = get(port, "/metrics")
    assert status == 200
    found = samples(text)
    expected = {
        'renewals_messages_total{outcome="owner.changed",type="OwnerChanged"}': 1,
        'renewals_messages_total{outcome="owner.stale_ignored",type="OwnerChanged"}': 1,
        'renewals_messages_total{outcome="renewal.notification_requested",type="RenewalApproaching"}': 3,
        'renewals_messages_total{outcome="message.duplicate_event",type="RenewalApproaching"}': 1,
        'renewals_messages_total{outcome="message.dead_lettered",type="RenewalApproaching"}': 1,
        'renewals_messages_total{outcome="message.dead_lettered",type="unknown"}': 1,
        'renewals_notifications_total{audience="both",resolved_from="partner_default"}': 1,
        'renewals_notifications_total{audience="partner_contact",resolved_from="partner_default"}': 1,
        'renewals_notifications_total{audience="decision_maker",resolved_from="system_default"}': 1,
        'renewals_dead_letters_total{reason="no_recipient"}': 1,
        'renewals_dead_letters_total{reason="invalid_json"}': 1,
    }
    for name, value in expected.items():
        assert found.get(name) == value, (name, found.get(name))
    logged = canonical(worker)
    assert sum(v for k, v in found.items() if k.startswith("renewals_messages_total{")) == len(logged) == 8
    assert found["renewals_batch_messages_count"] >= 1 and found["renewals_event_age_seconds_count"] == 7
    assert found['renewals_build_info{store="sqlite",version="' + _version() + '"}'] == 1
    assert "renewals_outbox_pending_rows" in found and "renewals_seconds_since_last_delivery" in found
    assert found["renewals_ready"] == 1
    assert not re.search(r'(client_id|partner_id|event_id)="', text)  # no unbounded labels


def test_readiness_follows_the_consumer_cancelled_by_the_broker(
    client: Client, start_worker, amqp_url: str
) -> None:
    """The broker cancels the consumer (queue deleted) and the worker may not declare it again:
    /readyz answers 503 while /healthz stays 200; once it may, the worker recovers and /readyz is 200."""
    port = free_port()
    worker = start_worker(RENEWALS_METRICS_PORT=str(port))
    assert wait_until(lambda: get(port, "/readyz")[0] == 200, "ready")
    vhost = unquote(urlsplit(amqp_url).path[1:])
    _permissions(amqp_url, configure="^$")
    try:
        subprocess.run(
            [*rabbitmqctl_for(amqp_url), "-q", "delete_queue", "-p", vhost, NAMES.queue],
            check=True,
            capture_output=True,
        )
        _, body = wait_until(lambda: (r := get(port, "/readyz"))[0] == 503 and r, "not ready")
        assert json.loads(body)["consuming"] is False
        refused = worker.wait_for("broker.connection_lost", count=2)  # cancelled, then refused again
        assert "ACCESS_REFUSED" in refused[-1]["error"] and worker.running()
        assert get(port, "/readyz")[0] == 503 and get(port, "/healthz")[0] == 200
    finally:
        _permissions(amqp_url, configure=".*")
    assert wait_until(lambda: get(port, "/readyz")[0] == 200, "ready again", timeout=30)


@pytest.mark.other_brokers_slow
def test_readiness_follows_the_store(start_worker, tmp_path: Path) -> None:
    """Another writer holds the SQLite store past the busy timeout: /readyz turns 503 within a few
    seconds with store_answers false; released, it is 200 again."""
    port = free_port()
    start_worker(RENEWALS_METRICS_PORT=str(port), RENEWALS_STORE_LOCK_TIMEOUT="0.2")
    assert wait_until(lambda: get(port, "/readyz")[0] == 200, "ready")
    blocker = sqlite3.connect(tmp_path / "renewals.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        _, body = wait_until(lambda: (r := get(port, "/readyz"))[0] == 503 and r, "not ready", timeout=15)
        assert json.loads(body)["store_answers"] is False
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert wait_until(lambda: get(port, "/readyz")[0] == 200, "ready again", timeout=30)


@pytest.mark.other_brokers_slow
def test_every_metric_the_dashboard_queries_is_in_a_real_scrape(start_worker) -> None:
    """The Grafana dashboard in the repository only asks for metrics the worker exposes."""
    port = free_port()
    start_worker(RENEWALS_METRICS_PORT=str(port))
    _, text = get(port, "/metrics")
    exposed = {line.split(" ")[2] for line in text.splitlines() if line.startswith("# TYPE ")}
    series = {name for name in samples(text)} | exposed
    names = {re.split(r"[{ ]", s)[0] for s in series}
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    queried = {
        metric
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        for metric in re.findall(r"\b(renewals_[a-z_]+)", target["expr"])
    }
    assert queried and queried <= names, queried - names


def _permissions(amqp_url: str, *, configure: str) -> None:
    vhost = unquote(urlsplit(amqp_url).path[1:])
    subprocess.run(
        [*rabbitmqctl_for(amqp_url), "-q", "set_permissions", "-p", vhost, "guest", configure, ".*", ".*"],
        check=True,
        capture_output=True,
    )


def _version() -> str:
    from worker.settings import VERSION

    return VERSION
