"""Replays over the records at scale, through the real broker: 10,000 letters at a set rate with
progress, a Ctrl-C and a resume; and two replays started at once over the same letters on
PostgreSQL, which replay each letter once between them. The letters are put in the store
directly (no worker consumes the input queue: the test counts what the replays published)."""

import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time

import pytest

from support.client import NAMES, Client
from support.letters import spread
from tests.e2e.commands import ok, renewals
from worker.dead_letters.records import DeadLetterRecords
from worker.store import open_store

pytestmark = (
    pytest.mark.any_broker
)  # replay throttling, claims and resumes live in the store: the broker's version plays no part

COUNT = 10_000
RATE = 400.0


def filled(store_url: str, count: int) -> DeadLetterRecords:
    store = open_store(store_url)
    store.migrate()
    records = DeadLetterRecords(store)
    letters = spread(count)
    for start in range(0, count, 1000):
        records.insert(letters[start : start + 1000])
    return records


def command_env(amqp_url: str, store_url: str) -> dict[str, str]:
    return {
        **os.environ,
        "RENEWALS_AMQP_URL": amqp_url,
        "RENEWALS_STORE_URL": store_url,
        "RENEWALS_LOG_FORMAT": "json",
    }


def replayed_once_each(records: DeadLetterRecords) -> int:
    """How many letters have a `replayed` entry; fails if any has two."""
    rows = records._store.execute(
        "SELECT letter_id, count(*) FROM dead_letter_history WHERE kind = 'replayed' GROUP BY letter_id"
    ).fetchall()
    assert all(int(count) == 1 for _, count in rows), [row for row in rows if int(row[1]) > 1][:5]
    return len(rows)


def test_ten_thousand_letters_at_a_set_rate_with_progress_a_cancel_and_a_resume(
    client: Client, amqp_url: str, store_url: str, tmp_path
) -> None:
    """`dlq replay --all --rate 400` shows its progress and holds its rate; Ctrl-C ends it
    cleanly (exit 130, what was done committed, one line naming the resume); `--resume OP`
    replays exactly the rest: 10,000 letters in the input queue, each once."""
    records = filled(store_url, COUNT)
    ok(renewals(amqp_url, "topology", "--declare"))
    terminal, child_end = pty.openpty()
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "dlq", "replay", "--all", "--rate", str(RATE)],
        env=command_env(amqp_url, store_url), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=child_end,
    )  # fmt: skip
    os.close(child_end)
    shown = b""
    done = 0
    try:
        while done < 2000 and time.monotonic() - started < 60 and process.poll() is None:
            if select.select([terminal], [], [], 0.2)[0]:
                shown += os.read(terminal, 65536)
                progress = re.findall(
                    rb"replay (\w+): (\d+)/10000, replayed (\d+), skipped \d+, failed \d+, ([\d.]+)/s", shown
                )
                done = int(progress[-1][1]) if progress else 0
        process.send_signal(signal.SIGINT)
        stopping = time.monotonic()
        while time.monotonic() - stopping < 20:  # read on: the command writes its report and audit line
            if select.select([terminal], [], [], 0.2)[0]:
                try:
                    shown += os.read(terminal, 65536)
                except OSError:  # the command ended and closed its end
                    break
            elif process.poll() is not None:
                break
        assert process.wait(5) == 130
    finally:
        os.close(terminal)
    text = shown.decode(errors="replace")
    [operation] = set(re.findall(r"replay (\w+): \d+/10000", text))
    shown_rate = float(re.findall(r"([\d.]+)/s", text)[-1])
    assert shown_rate <= RATE * 1.1, text[-500:]
    assert f"resume with `renewals dlq replay --resume {operation}`" in text
    cancelled = records.operation(operation)
    assert cancelled.status == "cancelled" and 2000 <= cancelled.replayed < COUNT
    assert client.count(NAMES.queue) == cancelled.replayed == replayed_once_each(records)

    resumed_at = time.monotonic()
    resumed = subprocess.run(
        [sys.executable, "-m", "worker", "dlq", "replay", "--resume", operation, "--json"],
        env=command_env(amqp_url, store_url), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    elapsed = time.monotonic() - resumed_at
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)["status"] == "finished"
    finished = records.operation(operation)
    assert (finished.status, finished.replayed, finished.done) == ("finished", COUNT, COUNT)
    remaining = COUNT - cancelled.replayed
    assert elapsed >= remaining / RATE * 0.95, f"{remaining} letters in {elapsed:.1f}s: faster than {RATE}/s"
    print(f"\nresume: {remaining} letters in {elapsed:.1f}s ({remaining / elapsed:.0f}/s, rate {RATE:.0f}/s)")
    assert client.count(NAMES.queue) == COUNT == replayed_once_each(records)
    assert records.count() == 0


@pytest.mark.parametrize("letters", [2000])
def test_two_replays_at_once_on_postgresql_replay_each_letter_once(
    client: Client, amqp_url: str, postgres_url: str, letters: int
) -> None:
    """Two operators start `dlq replay --all` at the same moment over the same letters: the
    claims share the letters out, and each is published once."""
    records = filled(postgres_url, letters)
    ok(renewals(amqp_url, "topology", "--declare"))
    command = [sys.executable, "-m", "worker", "dlq", "replay", "--all", "--rate", "5000", "--json"]
    both = [
        subprocess.Popen(
            command,
            env=command_env(amqp_url, postgres_url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [process.communicate(timeout=120) for process in both]
    assert [process.returncode for process in both] == [0, 0], [err[-1000:] for _, err in results]
    operations = [records.operation(json.loads(out)["operation"]) for out, _ in results]
    assert [operation.status for operation in operations] == ["finished", "finished"]
    assert sum(operation.replayed for operation in operations) == letters
    assert all(operation.replayed > 0 for operation in operations), (
        "one replay did everything: no overlap tested"
    )
    assert client.count(NAMES.queue) == letters == replayed_once_each(records)
