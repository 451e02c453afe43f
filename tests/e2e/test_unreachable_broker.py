"""A worker started while the broker is away: it waits with growing, logged backoff, no busy loop."""

import signal
from pathlib import Path

from support.services import free_port
from support.worker_process import WorkerProcess


def test_an_unreachable_broker_is_retried_with_backoff_and_sigterm_still_exits_0(tmp_path: Path) -> None:
    """Attempts are logged once each, waiting a random time under a doubling bound (full
    jitter, so a fleet does not reconnect in step), every node named with its password masked;
    SIGTERM ends it cleanly."""
    nodes = f"amqp://guest:s3cret@127.0.0.1:{free_port()}/;amqp://guest:s3cond@127.0.0.1:{free_port()}/"
    worker = WorkerProcess(nodes, tmp_path).start(wait=False)
    lost = worker.wait_for("broker.connection_lost", count=3, timeout=10)
    delays = [r["retry_in_s"] for r in lost[:3]]
    assert all(0.1 <= delay <= 0.5 * 2**attempt for attempt, delay in enumerate(delays)), delays
    assert [r["attempt"] for r in lost[:3]] == [1, 2, 3]
    assert all(r["broker"].count("***") == 2 and "s3c" not in r["error"] for r in lost)
    assert all("***" in r["broker"] for r in lost)
    assert worker.stop(signal.SIGTERM, timeout=10) == 0
    assert "s3cret" not in worker.log_path.read_text() and "s3cond" not in worker.log_path.read_text()
