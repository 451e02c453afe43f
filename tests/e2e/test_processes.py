"""`renewals run --processes N` (issue 30): one supervisor, N worker processes on one queue and
one store. What the suites prove for several workers holds for its children (nothing lost,
nothing sent twice, the newest owner wins, on SQLite and PostgreSQL); a child that dies is
restarted; children that keep dying before they are ready end the run with one line; SIGTERM
stops every child gracefully, and so does the supervisor's death; the supervisor's /metrics is
the sum of its children's."""

import json
import os
import random
import signal
import sqlite3
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from support.client import Client, audit
from support.messages import contact, renewal
from support.polling import wait_until
from support.services import free_port
from support.sqlite_files import damaged_store, not_a_store
from support.worker_process import WorkerProcess
from tests.e2e.conftest import FAST_RETRIES
from tests.e2e.test_several_workers import (
    conflicting_changes,
    newest_by_rule,
    publish_at_once,
    reminders,
    scrambled,
)
from worker.exits import EX_FAILED, EX_REFUSED
from worker.service.outcomes import OUTCOMES
from worker.supervision.pool import START_ATTEMPTS

pytestmark = (
    pytest.mark.any_broker
)  # what the processes share is the store: the broker's version plays no part

DORA = contact("dora", "client.example")


def supervisor(amqp_url: str, folder: Path, store_url: str, processes: int, **env: str) -> WorkerProcess:
    """`renewals run` with RENEWALS_PROCESSES=`processes` (not started); every child logs to its file."""
    return WorkerProcess(
        amqp_url,
        folder,
        store_url=store_url,
        name="supervisor",
        env={**FAST_RETRIES, "RENEWALS_PROCESSES": str(processes), **env},
    )


def children(run: WorkerProcess) -> dict[int, dict[str, Any]]:
    """The newest child started in each slot: its pid and private port, by slot index."""
    return {line["index"]: line for line in run.find("supervisor.child_started")}


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
        return str(reply.read().decode())


def handled(text: str) -> float:
    """renewals_messages_total summed over its labels, from a Prometheus text."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("renewals_messages_total{")
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"


def projection(url: str) -> dict[tuple[str, str], tuple[Any, ...]]:
    """The owner_settings table as (owner, contact, event id) per (partner, client) key, either store."""
    query = "SELECT partner_id, client_id, owner, contact, event_id FROM owner_settings"
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as connection:
            rows = connection.execute(query).fetchall()
    else:
        with psycopg.connect(url) as connection:
            rows = connection.execute(query).fetchall()
    return {(p, c): (o, None if k is None else json.loads(k), e) for p, c, o, k, e in rows}


@pytest.fixture(params=["sqlite", "postgres"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store the children share: a SQLite file, or a PostgreSQL schema of this test's own."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'renewals.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_two_processes_share_a_stream_losing_nothing_sending_nothing_twice_and_the_newest_owner_wins(
    amqp_url: str, tmp_path: Path, shared_store: str, client: Client
) -> None:
    """Conflicting owner changes and repeated reminders through `--processes 2` on one store: both children take a share, the projection is the rule's, each reminder has one id, and the supervisor's /metrics sums both children's counters."""
    port = free_port()
    run = supervisor(
        amqp_url, tmp_path, shared_store, 2, RENEWALS_METRICS_PORT=str(port), RENEWALS_PREFETCH="20",
        RENEWALS_BATCH_SIZE="20",
    )  # fmt: skip
    run.start(wait=False)
    run.wait_for("worker.consuming", count=2, timeout=45)
    rng = random.Random(30)
    changes = conflicting_changes(rng, 300)
    due = reminders(rng)
    messages = scrambled(rng, changes, [*rng.sample(changes, 30), *due, *rng.sample(due, 10)])
    out = client.observe()
    publish_at_once(amqp_url, messages)
    wait_until(
        lambda: sum(1 for line in run.lines() if line.get("event") in OUTCOMES) >= len(messages),
        f"{len(messages)} outcomes",
        60,
    )
    assert projection(shared_store) == newest_by_rule(changes)
    ids_by_reminder: dict[tuple[str, str, int], set[str]] = {}
    for _method, properties, body in client.drain(out):
        data = json.loads(body)["data"]
        ids_by_reminder.setdefault(
            (data["client_id"], data["renewal_date"], data["days_until_renewal"]), set()
        ).add(properties.message_id)
    expected = {
        (e["data"]["client_id"], e["data"]["renewal_date"], e["data"]["days_until_renewal"]) for e in due
    }
    assert set(ids_by_reminder) == expected
    assert all(len(ids) == 1 for ids in ids_by_reminder.values()), ids_by_reminder
    shares = [handled(scrape(child["port"])) for child in children(run).values()]
    assert len(shares) == 2 and all(share > 0 for share in shares), shares
    assert sum(shares) == len(messages)
    assert handled(scrape(port)) == len(messages)
    assert json.loads(scrape(port, "/readyz"))["status"] == "ok"
    assert run.stop() == 0


def test_a_killed_child_is_restarted_and_sigterm_stops_every_child_gracefully(
    amqp_url: str, tmp_path: Path, client: Client
) -> None:
    """kill -9 of one of two children: the supervisor starts another in its slot, which takes work; then SIGTERM stops both children gracefully and the supervisor exits 0."""
    run = supervisor(amqp_url, tmp_path, f"sqlite:///{tmp_path / 'renewals.db'}", 2)
    run.start(wait=False)
    run.wait_for("supervisor.child_ready", count=2, timeout=45)
    victim = children(run)[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    [died] = run.wait_for("supervisor.child_died", timeout=10)
    assert (died["pid"], died["exit_status"], died["was_ready"]) == (victim, "SIGKILL", True)
    run.wait_for("supervisor.child_ready", count=3, timeout=45)
    replacement = children(run)[0]["pid"]
    assert replacement != victim and alive(replacement)
    out = client.observe()
    events = [renewal(f"again-{n}", None, decision_maker=DORA, id=f"again-evt-{n}") for n in range(200)]
    client.publish(events)
    result = audit(client.take(out, len(events), timeout=30), {event["id"] for event in events})
    assert (result["lost"], result["unexpected"], result["events_with_two_ids"]) == (0, 0, 0), result
    pids = [child["pid"] for child in children(run).values()]
    assert run.stop(signal.SIGTERM) == 0
    assert len(run.find("worker.stopping")) == 2  # each live child was asked, once
    assert len(run.find("supervisor.stopped")) == 1
    assert not any(alive(pid) for pid in pids)


def given_up(amqp_url: str, folder: Path, store: Path, status: int) -> tuple[WorkerProcess, dict[str, Any]]:
    """Two processes on the SQLite file `store`; the run, once it ended with `status`, and its
    one `supervisor.gave_up` line (an error, with that status)."""
    run = supervisor(amqp_url, folder, f"sqlite:///{store}", 2)
    run.start(wait=False)
    assert run.process is not None
    assert run.process.wait(60) == status
    [gave_up] = run.find("supervisor.gave_up")
    assert gave_up["level"] == "error" and gave_up["exit_status"] == status
    return run, gave_up


def test_children_that_keep_dying_before_they_are_ready_end_the_run_with_one_line(
    amqp_url: str, tmp_path: Path
) -> None:
    """A damaged store file kills every child at its start (exit 1, which may pass): after START_ATTEMPTS deaths the supervisor stops with one error line and exit status 1, leaving no child behind."""
    damaged = tmp_path / "damaged.db"
    damaged_store(damaged)
    run, gave_up = given_up(amqp_url, tmp_path, damaged, EX_FAILED)
    assert f"{START_ATTEMPTS} worker processes in a row died before they were ready" in gave_up["error"]
    assert len(run.find("supervisor.child_died")) == START_ATTEMPTS - 1  # the last is in the one line
    assert not any(alive(line["pid"]) for line in run.find("supervisor.child_started"))


def test_a_store_url_naming_some_other_file_ends_the_run_at_the_first_death_with_its_status(
    amqp_url: str, tmp_path: Path
) -> None:
    """A file that is not a store is a URL to fix, not an outage: the first child says so in one
    line and exits 77, and the supervisor stops at once with that status, starting no other."""
    other = tmp_path / "notes.txt"
    not_a_store(other)
    run, gave_up = given_up(amqp_url, tmp_path, other, EX_REFUSED)
    assert "exit status 77" in gave_up["error"]
    said = [line["error"] for line in run.find("worker.cannot_start")]
    assert said and all("file is not a database; set RENEWALS_STORE_URL" in line for line in said)
    assert len(run.find("supervisor.child_started")) == 2  # both slots, none restarted
    assert not run.find("supervisor.child_died")
    assert "Traceback" not in run.tail(1_000_000)


def test_children_stop_gracefully_when_their_supervisor_is_killed(amqp_url: str, tmp_path: Path) -> None:
    """kill -9 of the supervisor: each child is sent SIGTERM by the kernel and stops gracefully, none runs on unsupervised."""
    run = supervisor(amqp_url, tmp_path, f"sqlite:///{tmp_path / 'renewals.db'}", 2)
    run.start(wait=False)
    run.wait_for("supervisor.child_ready", count=2, timeout=45)
    pids = [child["pid"] for child in children(run).values()]
    run.kill()
    wait_until(lambda: not any(alive(pid) for pid in pids), "both children gone", 30)
    stopping = run.find("worker.stopping")
    assert [line["signal"] for line in stopping] == ["SIGTERM", "SIGTERM"]
    assert len(run.find("worker.stopped")) == 2
