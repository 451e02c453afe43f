from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.client import Client
from support.worker_process import WorkerProcess

FAST_RETRIES = {
    "RENEWALS_RETRY_DELAYS": "[0.2, 0.4, 0.8]",
    "RENEWALS_OUTBOX_GRACE": "1",
    "RENEWALS_OUTBOX_SWEEP_INTERVAL": "0.5",
}
"""Retry tiers and outbox grace short enough for a test to wait through."""

StartWorker = Callable[..., WorkerProcess]


@pytest.fixture
def client(amqp_url: str) -> Iterator[Client]:
    c = Client(amqp_url)
    yield c
    c.close()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """The store the test's workers share (`start_worker`'s default): where dead letters are recorded."""
    return f"sqlite:///{tmp_path / 'renewals.db'}"


@pytest.fixture
def start_worker(amqp_url: str, tmp_path: Path) -> Iterator[StartWorker]:
    """Start worker processes on this test's vhost and store (`faults` swaps in fault-injecting
    handlers, `env` adds RENEWALS_* settings); every one is stopped at the end."""
    started: list[WorkerProcess] = []

    def start(wait: bool = True, faults: dict[str, str] | None = None, **env: str) -> WorkerProcess:
        worker = WorkerProcess(amqp_url, tmp_path, env={**FAST_RETRIES, **env}, faults=faults)
        started.append(worker.start(wait))
        return worker

    yield start
    for worker in started:
        worker.kill()
