"""The worker tells the garbage collector to look less often, once it is built (issue 30): with
the defaults the collector walked the whole heap every few batches."""

import gc
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from worker import running
from worker.settings import Settings


def test_collect_less_freezes_what_start_up_made_and_raises_the_young_threshold() -> None:
    """In a fresh interpreter (the test's own collector is left alone)."""
    probe = (
        "import gc; from worker.running import collect_less, YOUNG_COLLECTION_EVERY;"
        "before = gc.get_freeze_count(); collect_less();"
        "print(gc.get_threshold()[0] == YOUNG_COLLECTION_EVERY, before == 0 < gc.get_freeze_count())"
    )
    answer = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert answer.stdout.split() == ["True", "True"]


def test_the_worker_is_built_then_the_collector_told_then_the_worker_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[str] = []

    class Built:
        def run(self, stop: threading.Event) -> None:
            steps.append("run")

    def build(*_args: Any, **_kwargs: Any) -> Built:
        steps.append("built")
        return Built()

    monkeypatch.setattr(running, "build_worker", build)
    monkeypatch.setattr(running, "collect_less", lambda: steps.append("collect less"))
    monkeypatch.setattr(running.signal, "signal", lambda *_args: None)  # the test runner's own handlers stay
    running.run_until_signalled(Settings(store_url=f"sqlite:///{tmp_path / 'r.db'}"))
    assert steps == ["built", "collect less", "run"]
    assert gc.get_freeze_count() == 0  # the test process itself was not frozen
