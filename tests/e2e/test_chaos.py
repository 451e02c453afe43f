"""The fault runner (`python -m support.chaos`), reduced to fit the suite: its checker's verdict on one
run is the test. The long runs are documented commands (docs/development.md, "The fault runner")."""

from dataclasses import replace

import pytest

from support.chaos.options import RABBITMQ, Options
from support.chaos.run import run

REDUCED = Options(
    seed=20261128,
    events=3000,
    faults={"kill": 2, "sigterm": 1, "broker-restart": 1, "close-connection": 1},
    fault_gap=2.5,
    timeout=90,
)

REDUCED_CLUSTER = Options(
    seed=20261206,
    events=3000,
    workers=2,
    cluster=True,
    faults={"node-stop": 2, "kill": 1, "close-connection": 1},
    fault_gap=3.0,
    timeout=120,
)


@pytest.mark.slow
def test_a_reduced_fault_run_loses_nothing_duplicates_nothing_and_invents_nothing() -> None:
    """3,000 seeded messages (repeats, twins, out-of-order owner changes, every bad-input class) through a worker on a spare node while it is killed twice, stopped once, the broker restarts and closes a worker connection: the checker finds nothing lost, duplicated or unexpected."""
    report = run(REDUCED)
    print(report.render())
    assert report.verdict.ok, report.render()
    assert sorted(incident.fault for incident in report.incidents) == sorted(
        ["kill", "kill", "sigterm", "broker-restart", "close-connection"]
    ), report.render()
    assert report.stream.size >= 3000 and report.verdict.rows[0].got == len(report.stream.reminders)


@pytest.mark.slow
@pytest.mark.parametrize("version", RABBITMQ, ids=lambda version: f"cluster-{version}")
def test_a_reduced_cluster_fault_run_loses_nothing_on_every_rabbitmq_series(version: str) -> None:
    """3,000 seeded messages through two workers on a 3-node cluster of this RabbitMQ series while the worker queue's leader node is stopped and started twice, a worker is killed and a worker connection closed: the checker finds nothing lost, duplicated or unexpected, every dead letter recorded."""
    report = run(replace(REDUCED_CLUSTER, rabbitmq=version))
    print(report.render())
    assert report.verdict.ok, report.render()
    assert sorted(incident.fault for incident in report.incidents) == sorted(
        ["node-stop", "node-stop", "kill", "close-connection"]
    ), report.render()
    assert report.rabbitmq.startswith(f"{version}."), report.rabbitmq
    assert report.stream.size >= 3000 and report.verdict.rows[0].got == len(report.stream.reminders)
