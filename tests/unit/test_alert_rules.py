"""The shipped alerting rules (deploy/prometheus/renewals-alerts.yml): Debian's promtool checks
them and runs their unit tests, every alert is complete and tested both ways, and breaking a
threshold makes the rule tests fail."""

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.monitoring import RULE_TESTS, RULES, MonitoringMissing, Tools, ensure_tools, rules_for_tests
from tests.unit.test_doc_links import anchors

ROOT = Path(__file__).resolve().parents[2]
OPERATIONS = ROOT / "docs" / "operations.md"


@pytest.fixture(scope="module")
def tools() -> Tools:
    try:
        return ensure_tools()
    except MonitoringMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def alerts(text: str) -> dict[str, dict[str, Any]]:
    """Every alerting rule of a rule file, by name."""
    groups = yaml.safe_load(text)["groups"]
    return {rule["alert"]: rule for group in groups for rule in group["rules"] if "alert" in rule}


def promtool(tools: Tools, *arguments: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tools.promtool, *arguments], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_promtool_checks_the_rules_and_passes_their_unit_tests(tools: Tools) -> None:
    """`promtool check rules` accepts the shipped file and `promtool test rules` passes every case."""
    checked = promtool(tools, "check", "rules", RULES.name, cwd=RULES.parent)
    assert checked.returncode == 0 and "SUCCESS" in checked.stdout, checked.stdout + checked.stderr
    tested = promtool(tools, "test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_a_broken_threshold_fails_the_rule_tests(tools: Tools, tmp_path: Path) -> None:
    """With the dead-letter threshold lowered to 0.05 a minute, the single dead letter of the rule
    tests fires too and `promtool test rules` fails, naming the alert: the tests can fail."""
    shipped = RULES.read_text()
    assert "expr: vector(0.5)" in shipped
    (tmp_path / RULES.name).write_text(shipped.replace("expr: vector(0.5)", "expr: vector(0.05)", 1))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = promtool(tools, "test", "rules", RULE_TESTS.name, cwd=tmp_path)
    said = tested.stdout + tested.stderr
    assert tested.returncode != 0 and "FAILED" in said
    assert 'reason="invalid_json"' in said and "RenewalsDeadLettersByReason" in said


def test_every_alert_is_complete_and_links_its_runbook() -> None:
    """Each alert has a `for`, a severity, the service label, a summary naming the worker (or the
    queue), and a runbook_url whose section exists in docs/operations.md."""
    sections = anchors(OPERATIONS)
    found = alerts(RULES.read_text())
    assert len(found) >= 9
    for name, rule in found.items():
        assert rule.get("for"), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["labels"]["service"] == "renewal-routing", name
        summary = rule["annotations"]["summary"]
        assert "$labels.instance" in summary and "reason" in summary, name
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/operations.md" and anchor in sections, (name, anchor)


def test_every_alert_has_a_case_that_fires_it_and_one_that_must_not() -> None:
    """For every alert the rule tests hold at least one evaluation expecting it to fire and one
    expecting silence."""
    cases = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    checks = [check for case in cases for check in case.get("alert_rule_test", [])]
    for name in alerts(RULES.read_text()):
        mine = [check for check in checks if check["alertname"] == name]
        assert any(check["exp_alerts"] for check in mine), f"{name}: no case fires it"
        assert any(not check["exp_alerts"] for check in mine), f"{name}: no case keeps it quiet"


def test_the_end_to_end_rules_differ_from_the_shipped_ones_only_in_for() -> None:
    """The rules the end-to-end test loads keep every shipped expression, label and annotation;
    only `for` is shortened."""
    shipped = alerts(RULES.read_text())
    derived = alerts(rules_for_tests(RULES.read_text(), "2s"))
    assert derived.keys() == shipped.keys()
    for name, rule in derived.items():
        assert rule["for"] == "2s"
        assert {**rule, "for": shipped[name]["for"]} == shipped[name]


def test_compose_runs_prometheus_and_alertmanager_on_the_shipped_files(tools: Tools, tmp_path: Path) -> None:
    """docker-compose.yml mounts the shipped rules, Prometheus and Alertmanager configurations
    where they are read, and both configurations pass promtool's and amtool's checks."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    routes = ROOT / "deploy" / "alertmanager" / "alertmanager.yml"
    mounted = {
        volume.split(":")[1]: (ROOT / volume.split(":")[0]).resolve()
        for service in ("prometheus", "alertmanager")
        for volume in compose[service]["volumes"]
        if volume.startswith("./")
    }
    assert mounted["/etc/prometheus/renewals-alerts.yml"] == RULES
    assert mounted["/etc/prometheus/prometheus.yml"] == config
    assert mounted["/etc/alertmanager/alertmanager.yml"] == routes
    assert "--config.file=/etc/prometheus/prometheus.yml" in compose["prometheus"]["command"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in compose["alertmanager"]["command"]
    as_mounted = config.read_text()
    for inside, outside in mounted.items():  # check the configuration with the paths it will see
        as_mounted = as_mounted.replace(inside, str(outside))
    (tmp_path / "prometheus.yml").write_text(as_mounted)
    checked = promtool(tools, "check", "config", "prometheus.yml", cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    amtool = shutil.which("amtool")
    assert amtool is not None, "amtool comes with prometheus-alertmanager"
    routed = subprocess.run([amtool, "check-config", str(routes)], capture_output=True, text=True, timeout=60)
    assert routed.returncode == 0, routed.stdout + routed.stderr


def test_the_dashboard_draws_the_rules_thresholds_and_the_firing_alerts() -> None:
    """The Grafana dashboard plots the dead-letter, event-age and outbox thresholds from the
    rules' own recorded series (so changing one changes the line), each a name the rules record,
    and lists the alerts firing."""
    recorded = {
        rule["record"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    drawn = {name for expr in expressions for name in re.findall(r"renewals:threshold:[a-z0-9_]+", expr)}
    assert drawn <= recorded, drawn - recorded
    for threshold in ("dead_letters_per_minute", "event_age_p99_seconds", "outbox_oldest_seconds"):
        assert f"renewals:threshold:{threshold}" in drawn, threshold
    assert any(expr.startswith("ALERTS{") and 'service="renewal-routing"' in expr for expr in expressions)
