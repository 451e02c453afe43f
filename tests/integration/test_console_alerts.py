"""The console's alerts box against Debian's real Alertmanager: the firing alerts of this
deployment in the health strip, silencing one for a chosen time through the silences API (v2),
audited; viewers only look; without RENEWALS_ALERTMANAGER_URL nothing changes."""

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from support.alert_receiver import AlertReceiver
from support.console import OPERATOR, VIEWER, basic, in_process, sign_in
from support.monitoring import MonitoringMissing, Server, alertmanager, ensure_tools
from support.services import free_port
from worker.settings import Settings

NOT_READY = {"alertname": "RenewalsWorkerNotReady", "instance": "w1:9100", "job": "renewals"}
DEAD_LETTERS = {"alertname": "RenewalsDeadLettersByReason", "instance": "w1:9100", "reason": "no_recipient"}
RUNBOOK = "https://git.example/renewals/docs/operations.md#runbook-dead-letters-arriving"
ELSEWHERE = {"alertname": "DiskFull", "instance": "db1:9100", "service": "billing"}


@pytest.fixture
def routes(tmp_path: Path) -> Iterator[Server]:
    """A real Alertmanager holding two alerts of this deployment and one of another service."""
    try:
        tools = ensure_tools()
    except MonitoringMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    with AlertReceiver() as receiver, alertmanager(tools, tmp_path / "alertmanager", receiver.url) as server:
        now = datetime.now(UTC)
        alerts = [
            {
                "labels": {
                    **labels,
                    "severity": severity,
                    **({} if "service" in labels else {"service": "renewal-routing"}),
                },
                "annotations": {
                    "summary": f"summary of {labels['alertname']}",
                    "runbook_url": runbook,
                },
                "startsAt": now.isoformat(),
                "endsAt": (now + timedelta(hours=1)).isoformat(),
            }
            for labels, severity, runbook in (
                (NOT_READY, "critical", "docs/operations.md#runbook-worker-not-ready"),
                (DEAD_LETTERS, "warning", RUNBOOK),
                (ELSEWHERE, "critical", "https://runbooks.example/disk"),
            )
        ]
        call(server.url, "/api/v2/alerts", alerts)
        yield server


def call(url: str, path: str, body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        text = response.read()
        return json.loads(text) if text else None


def fingerprint(url: str, name: str) -> str:
    return next(a["fingerprint"] for a in call(url, "/api/v2/alerts") if a["labels"]["alertname"] == name)


def test_the_strip_shows_this_deployments_alerts_and_an_operator_silences_one(
    routes: Server, tmp_path: Path
) -> None:
    """The health strip lists the two firing alerts of this deployment (not the other service's),
    each with its runbook (a link when absolute, as text when relative to the repository); an operator silences one for 30 minutes: Alertmanager holds a
    silence by them matching its labels, the strip no longer shows it, and the audit says so."""
    client, records = in_process(tmp_path, [], alertmanager_url=routes.url)
    token = sign_in(client, OPERATOR)
    assert 'id="alerts"' in client.get("/").text
    strip = client.get("/alerts").text
    assert "summary of RenewalsWorkerNotReady" in strip and "summary of RenewalsDeadLettersByReason" in strip
    assert "DiskFull" not in strip and "alerts firing: 2" in strip
    assert "runbook: <code>docs/operations.md#runbook-worker-not-ready</code>" in strip  # relative: text
    assert f'<a href="{RUNBOOK}" rel="noreferrer">runbook</a>' in strip  # absolute: a link
    chosen = fingerprint(routes.url, "RenewalsDeadLettersByReason")
    answer = client.post(
        "/alerts/silence", data={"fingerprint": chosen, "minutes": "30", "csrf_token": token}
    )
    assert answer.status_code == 200 and "silenced RenewalsDeadLettersByReason until" in answer.text
    [silence] = [s for s in call(routes.url, "/api/v2/silences") if s["status"]["state"] == "active"]
    assert silence["createdBy"] == OPERATOR[0]
    matched = {m["name"]: m["value"] for m in silence["matchers"]}
    assert matched == {**DEAD_LETTERS, "severity": "warning", "service": "renewal-routing"}
    length = datetime.fromisoformat(silence["endsAt"]) - datetime.fromisoformat(silence["startsAt"])
    assert timedelta(minutes=29) < length <= timedelta(minutes=30)
    strip = client.get("/alerts").text
    assert "RenewalsDeadLettersByReason" not in strip and "alerts firing: 1" in strip
    [entry] = records.audit_log(limit=1)
    assert (entry.action, entry.actor, entry.counts) == ("silence", OPERATOR[0], {"minutes": 30})
    assert "alertname=RenewalsDeadLettersByReason" in entry.selection and silence["id"] in entry.result


def test_a_viewer_sees_the_alerts_but_may_not_silence(routes: Server, tmp_path: Path) -> None:
    """A viewer's strip has no silence form; the form and the API refuse a viewer's silence with
    403, and Alertmanager holds no silence afterwards."""
    client, _ = in_process(tmp_path, [], alertmanager_url=routes.url)
    token = sign_in(client, VIEWER)
    strip = client.get("/alerts").text
    assert "RenewalsWorkerNotReady" in strip and "/alerts/silence" not in strip
    chosen = fingerprint(routes.url, "RenewalsWorkerNotReady")
    form = client.post("/alerts/silence", data={"fingerprint": chosen, "minutes": "30", "csrf_token": token})
    api = client.post(
        "/api/alerts/silences", json={"fingerprint": chosen, "minutes": 30}, headers=basic(VIEWER)
    )
    assert form.status_code == 403 and api.status_code == 403
    assert call(routes.url, "/api/v2/silences") == []


def test_the_api_lists_and_silences_and_refuses_a_bad_duration(routes: Server, tmp_path: Path) -> None:
    """GET /api/alerts lists this deployment's alerts; a silence of 0 minutes or of an unknown
    fingerprint is refused with a clear reason; a good one answers its silence id."""
    client, _ = in_process(tmp_path, [], alertmanager_url=routes.url)
    listed = client.get("/api/alerts", headers=basic(OPERATOR)).json()
    assert {a["name"] for a in listed} == {"RenewalsWorkerNotReady", "RenewalsDeadLettersByReason"}
    chosen = fingerprint(routes.url, "RenewalsWorkerNotReady")
    zero = client.post(
        "/api/alerts/silences", json={"fingerprint": chosen, "minutes": 0}, headers=basic(OPERATOR)
    )
    assert zero.status_code == 422
    unknown = client.post(
        "/api/alerts/silences", json={"fingerprint": "ab12", "minutes": 5}, headers=basic(OPERATOR)
    )
    assert unknown.status_code == 404 and "no firing alert ab12" in unknown.json()["detail"]
    done = client.post(
        "/api/alerts/silences", json={"fingerprint": chosen, "minutes": 5}, headers=basic(OPERATOR)
    )
    assert done.status_code == 200 and done.json()["silence_id"] in {
        s["id"] for s in call(routes.url, "/api/v2/silences")
    }


def test_without_the_setting_nothing_changes(tmp_path: Path) -> None:
    """Without RENEWALS_ALERTMANAGER_URL the pages carry no alerts box and /alerts and /api/alerts
    are 404."""
    client, _ = in_process(tmp_path, [])
    sign_in(client, OPERATOR)
    assert 'id="alerts"' not in client.get("/").text
    assert client.get("/alerts").status_code == 404
    assert client.get("/api/alerts", headers=basic(OPERATOR)).status_code == 404


def test_an_alertmanager_that_does_not_answer_is_one_line_without_its_password(tmp_path: Path) -> None:
    """An Alertmanager nobody listens for: the strip says so in one line, the URL's password masked."""
    client, _ = in_process(tmp_path, [], alertmanager_url=f"http://ops:s3cret-pw@127.0.0.1:{free_port()}")
    sign_in(client, VIEWER)
    strip = client.get("/alerts").text
    assert "Alertmanager does not answer at http://ops:***@127.0.0.1:" in strip and "s3cret-pw" not in strip


def test_an_alertmanager_url_that_is_not_http_is_refused() -> None:
    """RENEWALS_ALERTMANAGER_URL without http:// or https:// is refused, saying what to write."""
    with pytest.raises(ValidationError, match="expected an http:// or https:// URL"):
        Settings(alertmanager_url="alertmanager:9093")
