"""The shipped alerting rules with the real servers: the worker as a subprocess, Debian's
Prometheus and Alertmanager on free loopback ports, and a webhook receiver of the test's own.
Prometheus loads the shipped rules with every `for` shortened to 2s (the one documented
substitution); the expressions are the shipped ones. And the worker's own counts behind the
replay alert, through a real replay."""

import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.alert_receiver import AlertReceiver, ReceivedAlert
from support.client import Client
from support.messages import renewal
from support.monitoring import (
    RULES,
    MonitoringMissing,
    Server,
    Tools,
    alertmanager,
    ensure_tools,
    prometheus,
    rules_for_tests,
)
from support.polling import wait_until
from support.records import stored_letters
from support.services import free_port
from support.worker_process import WorkerProcess
from tests.e2e.commands import ok, renewals

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here

HOLD = "2s"  # every alert's `for` in the test's copy of the rules
EVERY = "1s"  # Prometheus' scrape and evaluation interval in the test
BURST = 30  # invalid events: 3/min over the rule's 10-minute window, above the 0.5/min threshold


@dataclass
class Monitored:
    worker: WorkerProcess
    target: str
    receiver: AlertReceiver
    prometheus: Server
    alertmanager: Server

    def wait_for(self, alertname: str, status: str = "firing", timeout: float = 60.0) -> ReceivedAlert:
        """The alert at the webhook; if it never comes, what Prometheus saw says why."""
        try:
            return self.receiver.wait_for(alertname, status, timeout)
        except TimeoutError as exc:
            paths = ("/api/v1/alerts", "/api/v1/query?query=renewals_dead_letters_total", "/api/v1/rules")
            seen = {path: _get(f"{self.prometheus.url}{path}") for path in paths}
            raise AssertionError(
                f"{exc}; Prometheus says {seen}; webhook got {self.receiver.alerts}"
            ) from None


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode()[:3000])


@pytest.fixture(scope="module")
def tools() -> Tools:
    try:
        return ensure_tools()
    except MonitoringMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def monitored(tools: Tools, start_worker, tmp_path: Path) -> Iterator[Monitored]:
    """A worker serving its metrics, scraped by Prometheus, whose alerts go through Alertmanager
    to the test's receiver."""
    port = free_port()
    worker = start_worker(RENEWALS_METRICS_PORT=str(port))
    target = f"127.0.0.1:{port}"
    rules = rules_for_tests(RULES.read_text(), HOLD)
    with (
        AlertReceiver() as receiver,
        alertmanager(tools, tmp_path / "alertmanager", receiver.url) as routes,
        prometheus(tools, tmp_path / "prometheus", rules, [target], routes.url, every=EVERY) as server,
    ):
        yield Monitored(worker, target, receiver, server, routes)


def burst(client: Client) -> float:
    """Publish BURST invalid events; the moment (monotonic) the first one was sent."""
    started = time.monotonic()
    client.publish([b"{not json"] * BURST, content_type="application/json")
    return started


def test_a_burst_of_bad_events_reaches_the_webhook_with_its_reason_and_runbook(
    monitored: Monitored, client: Client
) -> None:
    """A burst of invalid events fires RenewalsDeadLettersByReason within its `for` plus a few
    scrape intervals, and Alertmanager delivers it to the webhook naming the worker, the reason
    and the runbook section; nothing fired before the burst."""
    time.sleep(3)  # a few scrapes of a quiet worker first: the counters' zeros are seen
    assert monitored.receiver.alerts == []
    started = burst(client)
    monitored.worker.wait_for("message.dead_lettered", count=BURST)
    alert = monitored.wait_for("RenewalsDeadLettersByReason", timeout=60)
    elapsed = alert.received - started
    print(f"\nfirst bad event -> webhook: {elapsed:.2f} s (for {HOLD}, scrape and evaluation every {EVERY})")
    assert alert.labels["reason"] == "invalid_json" and alert.labels["instance"] == monitored.target
    assert alert.labels["severity"] == "warning" and alert.labels["service"] == "renewal-routing"
    assert alert.annotations["runbook_url"] == "docs/operations.md#runbook-dead-letters-arriving"
    assert (
        f"worker {monitored.target}" in alert.annotations["summary"]
        and "invalid_json" in alert.annotations["summary"]
    )
    assert (
        elapsed < 2 + 1 + 1 + 5
    )  # `for` + a scrape + an evaluation, with 5 s for the worker and Alertmanager


def test_a_stopped_worker_fires_not_ready(monitored: Monitored) -> None:
    """A worker stopped (SIGTERM, exit 0) no longer answers scrapes: RenewalsWorkerNotReady reaches
    the webhook for its instance, with its runbook section."""
    time.sleep(3)  # the worker was seen: its build info is in Prometheus
    assert monitored.worker.stop() == 0
    alert = monitored.wait_for("RenewalsWorkerNotReady", timeout=60)
    assert alert.labels["instance"] == monitored.target and alert.labels["severity"] == "critical"
    assert alert.annotations["runbook_url"] == "docs/operations.md#runbook-worker-not-ready"
    assert not [
        a for a in monitored.receiver.alerts if a.labels["alertname"].startswith("RenewalsDeadLetters")
    ]


@pytest.mark.slow
def test_the_dead_letter_alert_resolves_after_the_burst(monitored: Monitored, amqp_url: str) -> None:
    """After a burst the dead-letter alert fires, and once the burst has left the rule's 10-minute
    window Alertmanager tells the webhook it is resolved (about ten minutes)."""
    client = Client(amqp_url)  # closed at once: an idle connection would not outlive ten minutes
    try:
        started = burst(client)
    finally:
        client.close()
    fired = monitored.wait_for("RenewalsDeadLettersByReason", timeout=60)
    resolved = monitored.wait_for("RenewalsDeadLettersByReason", status="resolved", timeout=900)
    print(
        f"\nfired after {fired.received - started:.1f} s, resolved after {resolved.received - started:.1f} s"
    )
    assert resolved.labels["reason"] == "invalid_json"
    assert resolved.received - started > 9 * 60  # not before the burst left the window


def test_a_replayed_message_failing_again_and_nothing_redelivered_are_what_the_worker_counts(
    client: Client, start_worker, amqp_url: str, store_url: str
) -> None:
    """A reminder nobody can be addressed for is dead-lettered, replayed with `renewals dlq
    replay`, and dead-lettered again: the worker counts one replayed dead letter for
    `no_recipient` (what RenewalsReplayFailingAgain watches), and no redelivery."""
    port = free_port()
    worker = start_worker(RENEWALS_METRICS_PORT=str(port))
    client.publish([renewal("c-nobody", "p-nobody", id="r-nobody")])
    wait_until(lambda: len(stored_letters(store_url)) == 1, "the first dead letter recorded")
    assert scraped(port)['renewals_replayed_dead_letters_total{reason="no_recipient"}'] == 0
    ok(renewals(amqp_url, "dlq", "replay", "--reason", "no_recipient", RENEWALS_STORE_URL=store_url))
    worker.wait_for("message.dead_lettered", count=2)
    found = wait_until(
        lambda: (s := scraped(port))['renewals_dead_letters_total{reason="no_recipient"}'] == 2 and s,
        "the second dead letter counted",
    )
    assert found['renewals_replayed_dead_letters_total{reason="no_recipient"}'] == 1
    assert found["renewals_redelivered_total"] == 0


def scraped(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found
