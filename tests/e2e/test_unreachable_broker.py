"""A worker started while the broker is away: it waits with growing, logged backoff, no busy loop."""

import signal
from pathlib import Path

from support.services import free_port
from support.worker_process import WorkerProcess


def test_an_unreachable_broker_is_retried_with_backoff_and_sigterm_still_exits_0(tmp_path: Path) -> None:
    """Attempts are logged once each with a doubling delay and a masked password; SIGTERM ends it cleanly."""
    worker = WorkerProcess(f"amqp://guest:s3cret@127.0.0.1:{free_port()}/", tmp_path).start(wait=False)
    lost = worker.wait_for("broker.connection_lost", count=3, timeout=10)
    assert [r["retry_in_s"] for r in lost[:3]] == [0.5, 1.0, 2.0]
    assert all("***" in r["broker"] for r in lost)
    assert worker.stop(signal.SIGTERM, timeout=10) == 0
    assert "s3cret" not in worker.log_path.read_text()
