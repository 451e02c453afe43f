from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.harness import Client, WorkerProcess


@pytest.fixture
def client(amqp_url: str) -> Iterator[Client]:
    c = Client(amqp_url)
    yield c
    c.close()


@pytest.fixture
def start_worker(amqp_url: str, tmp_path: Path) -> Iterator[object]:
    """Start `renewals run` processes on this test's vhost and store; all are stopped at the end."""
    started: list[WorkerProcess] = []

    def start(wait: bool = True, **env: str) -> WorkerProcess:
        worker = WorkerProcess(amqp_url, tmp_path, **env).start(wait)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.process and worker.process.poll() is None:
            worker.kill()
