"""A scheduled replay run by the real worker process: scheduled by `renewals dlq replay --at`
while no worker runs, then run by a worker started afterwards (what it waits in survives the
process that scheduled it), on SQLite and PostgreSQL; and (slow) two workers, one killed
mid-run, the other taking the replay up: each letter replayed once."""

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
    assert finished.not_before is not None and run.at >= finished.not_before
    late = (run.at - finished.not_before).total_seconds()
    print(f"\nFIGURES scheduled replay on {backend}: started {late:.2f}s after it was due")  # with -s


def replayed_once_each(records: DeadLetterRecords) -> int:
    """How many letters have a `replayed` entry; fails if any has two."""
    rows = records._store.execute(
        "SELECT letter_id, count(*) FROM dead_letter_history WHERE kind = 'replayed' GROUP BY letter_id"
    ).fetchall()
    assert all(int(count) == 1 for _, count in rows), rows
    return len(rows)


@pytest.mark.slow  # about a minute: the killed worker's lease (30 s) has to run out
def test_two_workers_run_a_scheduled_replay_once_and_a_killed_one_s_is_taken_up(
    amqp_url: str, start_worker: StartWorker, postgres_url: str
) -> None:
    """Two workers on one PostgreSQL: one takes the due replay (rate 2/s, so it runs for
    seconds) and is killed mid-run; the other takes it up once the killed one's lease runs out
    and finishes it. Every letter is replayed once, and the audit names both runs."""
    store = open_store(postgres_url)
    store.migrate()
    records = DeadLetterRecords(store)
    records.insert(spread(COUNT))
    ok(renewals(amqp_url, "topology", "--declare"))
    workers = [start_worker(RENEWALS_STORE_URL=postgres_url) for _ in range(2)]
    scheduled = json.loads(
        ok(
            renewals(
                amqp_url, "dlq", "replay", "--all", "--rate", "2", "--at", "+2s", "--json",
                RENEWALS_STORE_URL=postgres_url,
            )
        ).stdout
    )  # fmt: skip
    operation_id = scheduled["operation"]
    wait_until(
        lambda: records.operation(operation_id).replayed >= 3, "the first runner under way", timeout=30
    )
    [first] = [e for e in records.audit_log() if e.action == "run_scheduled"]
    [running] = [w for w in workers if first.actor.endswith(f":{w.pid}")]
    running.kill()
    left_at = records.operation(operation_id).replayed
    assert left_at < COUNT
    wait_until(
        lambda: records.operation(operation_id).status == "finished",
        "the other worker to take the replay up and finish it",
        timeout=90,
    )
    assert records.operation(operation_id).replayed == COUNT == replayed_once_each(records)
    runs = [(e.actor, e.result) for e in records.audit_log() if e.action == "run_scheduled"]
    [other] = [w for w in workers if w is not running]
    assert len(runs) == 2 and runs[1] == (first.actor, "started")
    assert runs[0][0].endswith(f":{other.pid}") and runs[0][1] == "taken up"
