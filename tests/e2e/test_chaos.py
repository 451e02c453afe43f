"""The fault runner (`python -m support.chaos`), reduced to fit the suite: its checker's verdict on one
run is the test. The long runs are documented commands (docs/development.md, "The fault runner")."""

from support.chaos.options import Options
from support.chaos.run import run

REDUCED = Options(
    seed=20261128,
    events=3000,
    faults={"kill": 2, "sigterm": 1, "broker-restart": 1, "close-connection": 1},
    fault_gap=2.5,
    timeout=90,
)


def test_a_reduced_fault_run_loses_nothing_duplicates_nothing_and_invents_nothing() -> None:
    """3,000 seeded messages (repeats, twins, out-of-order owner changes, every bad-input class) through a worker on a spare node while it is killed twice, stopped once, the broker restarts and closes a worker connection: the checker finds nothing lost, duplicated or unexpected."""
    report = run(REDUCED)
    print(report.render())
    assert report.verdict.ok, report.render()
    assert sorted(incident.fault for incident in report.incidents) == sorted(
        ["kill", "kill", "sigterm", "broker-restart", "close-connection"]
    ), report.render()
    assert report.stream.size >= 3000 and report.verdict.rows[0].got == len(report.stream.reminders)
