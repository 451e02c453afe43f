"""The password-guessing measurement (`python -m bench.console_guessing`) in a short run, so it
cannot rot: both rounds report every figure, and the console stays small."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_the_guessing_measurement_reports_every_figure() -> None:
    """Four clients for two seconds per round: answers, checks per second, memory and recovery, each present."""
    finished = subprocess.run(
        [sys.executable, "-m", "bench.console_guessing", "--clients", "4", "--seconds", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr
    report = json.loads(finished.stdout)
    assert list(report) == ["one user", "many names"]
    for figures in report.values():
        assert figures["answers"] and figures["password_checks_per_second"] >= 0
        assert 0 < figures["rss_before_mib"] <= figures["rss_high_water_mib"] < 300
        assert 0 <= figures["right_password_back_after_seconds"] <= 20
