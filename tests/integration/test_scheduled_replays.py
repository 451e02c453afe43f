"""Scheduled replays (`dlq replay --at`) on SQLite and PostgreSQL, through the real broker:
recorded and listed while they wait, cancelled while waiting with nothing sent, run by a
worker's runner when due, taken up by a new runner when the one running them died, and run
once when two runners look at the same moment. No worker consumes the input queue: the test
counts what the replays published."""

import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner, Result

from support.client import NAMES, Client
from support.letters import spread
from support.polling import wait_until
from worker import logs
from worker.broker.endpoints import from_settings
from worker.cli import main
from worker.dead_letters import parse_at
from worker.dead_letters.model import LetterFilter
from worker.dead_letters.queue import ReplayPublisher
from worker.dead_letters.records import DeadLetterRecords
from worker.dead_letters.routing import Routes
from worker.dead_letters.scheduled_runs import ScheduledReplays
from worker.settings import Settings
from worker.store import open_store

pytestmark = pytest.mark.any_broker  # the schedule and its claims live in the store

COUNT = 12


@pytest.fixture
def client(amqp_url: str) -> Any:
    c = Client(amqp_url)
    yield c
    c.close()


class Scene:
    """A store with COUNT new letters, the test's vhost with the topology declared, and the
    `renewals` command over both."""

    def __init__(self, amqp_url: str, store_url: str) -> None:
        self.amqp_url, self.store_url = amqp_url, store_url
        self.records = self.open()
        self.records.insert(spread(COUNT))
        assert self.renewals("topology", "--declare").exit_code == 0

    def open(self) -> DeadLetterRecords:
        store = open_store(self.store_url)
        store.migrate()
        return DeadLetterRecords(store)

    def renewals(self, *args: str) -> Result:
        env = {
            "RENEWALS_AMQP_URL": self.amqp_url,
            "RENEWALS_STORE_URL": self.store_url,
            "RENEWALS_LOG_FORMAT": "json",
        }
        return CliRunner().invoke(main, list(args), env=env)

    def ok(self, *args: str) -> Result:
        result = self.renewals(*args)
        assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
        return result

    def runner(self, name: str, amqp_url: str | None = None) -> ScheduledReplays:
        """A worker's runner of due replays, as worker/app.py builds it, named `name`."""
        settings = Settings(amqp_url=amqp_url or self.amqp_url, store_url=self.store_url)
        log = logs.get_logger("tests.scheduled")
        return ScheduledReplays(
            self.open(),
            open_store=lambda: self.open()._store,
            publisher=lambda: ReplayPublisher(from_settings(settings, heartbeat=0), log=log),
            routes=lambda to_original: Routes.of(settings, to_original=to_original),
            runner=name,
            log=log,
            look_every=0.0,
        )

    def replayed_once_each(self) -> int:
        rows = self.records._store.execute(
            "SELECT letter_id, count(*) FROM dead_letter_history WHERE kind = 'replayed' GROUP BY letter_id"
        ).fetchall()
        assert all(int(count) == 1 for _, count in rows), rows
        return len(rows)


@pytest.fixture
def scene(amqp_url: str, store_url: str) -> Scene:
    return Scene(amqp_url, store_url)


def finished(scene: Scene, operation_id: str) -> bool:
    return scene.records.operation(operation_id).status == "finished"


def test_a_scheduled_replay_is_listed_and_cancelled_while_it_waits_with_nothing_sent(
    scene: Scene, client: Client
) -> None:
    """`replay --all --at +1h` records the operation scheduled with its time and sends
    nothing; `dlq replays` lists it; `dlq cancel` ends it cancelled at once (audited); a runner
    looking afterwards runs nothing."""
    scheduled = json.loads(scene.ok("dlq", "replay", "--all", "--at", "+1h", "--json").stdout)
    due = datetime.fromisoformat(scheduled["not_before"])
    assert timedelta(minutes=59) < due - datetime.now(UTC) <= timedelta(hours=1)
    assert scheduled["status"].startswith("scheduled for ") and scheduled["total"] == COUNT
    [listed] = json.loads(scene.ok("dlq", "replays", "--json").stdout)
    assert (listed["operation"], listed["not_before"]) == (scheduled["operation"], scheduled["not_before"])
    runner = scene.runner("early")
    runner.look()
    assert not runner.running() and client.count(NAMES.queue) == 0

    said = scene.ok("dlq", "cancel", scheduled["operation"]).stdout.strip()
    assert said == f"replay {scheduled['operation']}: cancelled"
    runner.look()
    assert not runner.running()
    assert client.quiet(NAMES.queue) and scene.records.count() == COUNT
    actions = [(entry.action, entry.result) for entry in scene.records.audit_log()]
    assert actions[:2] == [
        ("cancel", "cancelled while scheduled"),
        ("schedule", f"scheduled for {due.isoformat(timespec='seconds')}"),
    ]


def test_a_due_replay_is_run_by_a_worker_s_runner(scene: Scene, client: Client) -> None:
    """A replay scheduled two seconds ahead is not run before its time; the runner's next look
    after it runs it through the broker: every letter published once, the operation finished."""
    scheduled = json.loads(scene.ok("dlq", "replay", "--all", "--at", "+2s", "--json").stdout)
    runner = scene.runner("worker-a")
    runner.look()
    assert not runner.running()
    due = datetime.fromisoformat(scheduled["not_before"])
    wait_until(lambda: datetime.now(UTC) >= due, "the replay's time", timeout=5)
    runner.look()
    wait_until(lambda: finished(scene, scheduled["operation"]), "the scheduled replay finished", timeout=20)
    assert client.count(NAMES.queue) == COUNT == scene.replayed_once_each()
    assert scene.records.count() == 0


def test_a_replay_whose_runner_died_is_taken_up_by_a_new_one(scene: Scene, client: Client) -> None:
    """A runner claims the due replay and some of its letters, then dies (its process gone):
    no other runner takes it while its lease holds; once it runs out, a new runner (a restarted
    worker) takes it up and replays every letter, each once."""
    operation = scene.records.start_replay(
        LetterFilter(), actor="ana", rate=None, not_before_us=_us(datetime.now(UTC) - timedelta(seconds=1))
    )
    dead = scene.open()
    taken = dead.claim_due("dead-worker", lease=1.0)
    assert taken is not None and taken.id == operation.id and taken.status == "running"
    assert len(dead.claim(operation.id, limit=5, lease=1.0)) == 5
    restarted = scene.runner("restarted-worker")
    restarted.look()
    assert not restarted.running(), "taken while the dead runner's lease holds"
    wait_until(lambda: scene.records.any_due(), "the dead runner's lease to run out", timeout=5)
    restarted.look()
    wait_until(lambda: finished(scene, operation.id), "the replay taken up and finished", timeout=20)
    assert client.count(NAMES.queue) == COUNT == scene.replayed_once_each()
    starts = [e.result for e in scene.records.audit_log() if e.action == "run_scheduled"]
    assert starts == ["started", "started"]  # the dead runner's start, then the new one's


def test_two_runners_looking_at_once_run_a_due_replay_once(scene: Scene, client: Client) -> None:
    """Two workers' runners look at the same moment: one claims the replay and runs it, the
    other finds nothing due; each letter is published once."""
    operation = scene.records.start_replay(
        LetterFilter(), actor="ana", rate=None, not_before_us=_us(datetime.now(UTC) - timedelta(seconds=1))
    )
    runners = [scene.runner("worker-a"), scene.runner("worker-b")]
    go = threading.Barrier(2)

    def look(runner: ScheduledReplays) -> None:
        go.wait()
        runner.look()

    threads = [threading.Thread(target=look, args=(runner,)) for runner in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    wait_until(lambda: finished(scene, operation.id), "the scheduled replay finished", timeout=20)
    wait_until(lambda: not any(runner.running() for runner in runners), "both runners idle", timeout=10)
    assert client.count(NAMES.queue) == COUNT == scene.replayed_once_each()
    runs = [e.actor for e in scene.records.audit_log() if e.action == "run_scheduled"]
    assert len(runs) == 1 and runs[0] in {"worker-a", "worker-b"}


def test_a_runner_that_cannot_reach_the_broker_leaves_the_replay_claimed_and_untouched(scene: Scene) -> None:
    """A due replay claimed by a runner whose broker does not answer: nothing is replayed, the
    operation stays running under that runner's claim (no other runner takes it meanwhile),
    for a later look to take up once the claim runs out."""
    operation = scene.records.start_replay(
        LetterFilter(), actor="ana", rate=None, not_before_us=_us(datetime.now(UTC) - timedelta(seconds=1))
    )
    runner = scene.runner("cut-off", amqp_url="amqp://guest:guest@127.0.0.1:9/")
    runner.look()
    wait_until(lambda: not runner.running(), "the runner to give up", timeout=20)
    after = scene.records.operation(operation.id)
    assert (after.status, after.done) == ("running", 0) and scene.records.count() == COUNT
    assert not scene.records.any_due()  # its claim holds for now


@pytest.mark.parametrize(
    ("when", "says"),
    [
        ("2020-01-01T00:00:00Z", "is in the past"),
        ("2999-01-01T00:00:00", "has no zone"),
        ("tomorrow", "neither an ISO 8601 time with its zone"),
        ("30m", "neither an ISO 8601 time with its zone"),
    ],
)
def test_a_time_a_replay_cannot_wait_for_is_refused_in_one_line(scene: Scene, when: str, says: str) -> None:
    """`--at` in the past, without a zone or not a time: exit 2, the option named and what to
    write instead, no traceback, no operation recorded."""
    refused = scene.renewals("dlq", "replay", "--all", "--at", when)
    assert refused.exit_code == 2 and "Traceback" not in refused.output
    assert "--at" in refused.stderr and says in refused.stderr.splitlines()[-1]
    assert scene.records.operations() == []


def test_times_a_replay_waits_for() -> None:
    """`+30m`, `+2h`, `+90s` are delays from now; an ISO time with its zone is taken in UTC."""
    now = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
    assert parse_at("+30m", now) == now + timedelta(minutes=30)
    assert parse_at("+ 2h", now) == now + timedelta(hours=2)
    assert parse_at("+90s", now) == now + timedelta(seconds=90)
    assert parse_at("2026-12-07T03:00:00+01:00", now) == datetime(2026, 12, 7, 2, 0, tzinfo=UTC)


def _us(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)
