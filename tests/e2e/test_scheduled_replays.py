"""A scheduled replay run by the real worker process: scheduled by `renewals dlq replay --at`
while no worker runs, then run by a worker started afterwards (what it waits in survives the
process that scheduled it), on SQLite and PostgreSQL."""

import json

import pytest

from support.letters import spread
from support.polling import wait_until
from tests.e2e.commands import ok, renewals
from tests.e2e.conftest import StartWorker
from worker.dead_letters.records import DeadLetterRecords
from worker.store import open_store

pytestmark = pytest.mark.any_broker  # the schedule lives in the store

COUNT = 20


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_worker_started_later_runs_the_replay_scheduled_before_it(
    amqp_url: str, start_worker: StartWorker, store_url: str, backend: str, request: pytest.FixtureRequest
) -> None:
    """`dlq replay --all --at +3s` with no worker running records the replay scheduled; a
    worker started afterwards runs it when due, through its housekeeping: every letter
    replayed once, the operation finished, its start audited under the worker's name."""
    url = store_url if backend == "sqlite" else request.getfixturevalue("postgres_url")
    store = open_store(url)
    store.migrate()
    records = DeadLetterRecords(store)
    records.insert(spread(COUNT))
    ok(renewals(amqp_url, "topology", "--declare"))
    scheduled = json.loads(
        ok(
            renewals(amqp_url, "dlq", "replay", "--all", "--at", "+3s", "--json", RENEWALS_STORE_URL=url)
        ).stdout
    )
    assert records.operation(scheduled["operation"]).status == "scheduled"
    worker = start_worker(RENEWALS_STORE_URL=url)
    wait_until(
        lambda: records.operation(scheduled["operation"]).status == "finished",
        "the worker to run the scheduled replay",
        timeout=30,
    )
    finished = records.operation(scheduled["operation"])
    assert (finished.replayed, finished.done) == (COUNT, COUNT)
    [started] = worker.wait_for("replay.scheduled_started")
    assert started["operation_id"] == scheduled["operation"]
    [run] = [entry for entry in records.audit_log() if entry.action == "run_scheduled"]
    assert run.actor.endswith(f":{worker.pid}") and run.result == "started"
