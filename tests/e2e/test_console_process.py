"""`renewals console` as a process, driven through its API like a script: a replay cancelled
and resumed; stopping the console (SIGTERM) ends its replay cancelled, not left running, and
another console resumes it to the end."""

import base64
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from support.console import OPERATOR, ConsoleProcess, console_env, users_file
from support.letters import new_letter
from support.polling import wait_until
from tests.e2e.conftest import StartWorker
from worker.dead_letters.records import DeadLetterRecords
from worker.store import open_store

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here


def call(console: ConsoleProcess, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The console's API as a script calls it: HTTP Basic as the operator, JSON in and out."""
    credentials = base64.b64encode(f"{OPERATOR[0]}:{OPERATOR[1]}".encode()).decode()
    request = urllib.request.Request(
        console.url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Basic {credentials}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def test_a_replay_cancelled_resumed_and_stopped_with_its_console_is_resumed_by_another(
    amqp_url: str, tmp_path: Path, start_worker: StartWorker
) -> None:
    """Through the API at 4 letters a second: cancel, resume; SIGTERM to the console ends the
    replay cancelled; a new console resumes it and every letter is replayed exactly once."""
    start_worker()  # declares the topology the replays publish to, and migrates the store
    store_url = f"sqlite:///{tmp_path / 'renewals.db'}"
    records = DeadLetterRecords(open_store(store_url))
    records.insert([new_letter(event_id=f"evt-stop-{n:02d}") for n in range(20)])
    # Every copy fails again on purpose (its body is no valid event): the brake, which would
    # pause such a replay, is off here (it is proved in tests/integration/test_replay_fates.py).
    env = console_env(store_url, amqp_url, users_file(tmp_path), RENEWALS_REPLAY_BRAKE_SHARE=1)
    first = ConsoleProcess(env, tmp_path / "console-1.log").start()
    operation = call(first, "POST", "/api/replays", {"selection": {"all": True}, "rate": 4})
    path = f"/api/replays/{operation['id']}"
    wait_until(lambda: call(first, "GET", path)["done"] >= 2, what="a few replayed")
    call(first, "DELETE", path)  # cancelled through the API
    wait_until(lambda: call(first, "GET", path)["status"] == "cancelled", what="the cancel")
    cancelled = call(first, "GET", path)["done"]
    call(first, "POST", path + "/resume")
    wait_until(lambda: call(first, "GET", path)["done"] >= cancelled + 2, what="the resumed replay going on")
    first.stop()
    # uvicorn ends the process with the signal it was stopped by, after shutting down.
    assert first.process is not None and first.process.returncode in (0, -15), first.log()
    assert "console.replay_ended" in first.log()
    stopped = records.operation(operation["id"])
    assert stopped.status == "cancelled" and 4 <= stopped.done < 20, stopped

    second = ConsoleProcess(env, tmp_path / "console-2.log").start()
    try:
        call(second, "POST", f"/api/replays/{operation['id']}/resume")
        wait_until(
            lambda: call(second, "GET", f"/api/replays/{operation['id']}")["status"] == "finished",
            what="the resumed replay to finish",
            timeout=30,
        )
    finally:
        second.stop()
    ended = records.operation(operation["id"])
    assert (ended.replayed, ended.skipped, ended.failed) == (20, 0, 0)
    # The worker dead-letters each replayed copy again (its body is no valid event): one each.
    wait_until(lambda: records.count() == 20, what="the 20 copies dead-lettered again", timeout=30)
    again = records.page(limit=100).letters
    assert sorted(letter.event_id or "" for letter in again) == [f"evt-stop-{n:02d}" for n in range(20)]
    assert {letter.replays for letter in again} == {1}
