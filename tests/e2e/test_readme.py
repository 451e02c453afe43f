"""The README's Quick start, followed word for word on a fresh copy of the repository.

The copy holds the files git tracks (what a clone gives), as they are in the working tree. Every
command of the Quick start runs as written, in a shell, from that copy: the documented
`python3 -m venv .venv && .venv/bin/pip install -q -e .` makes a new virtual environment and
installs the copy into it (about ten seconds with pip's cache), so the worker, the demo and the
commands that run are the copy's. The one substitution is the broker URL, in the one place the
README says to put your own: the test's vhost instead of the default vhost `/`. Expected output
shown in the README (`$ command` then its lines, `...` skipping some) must be what the command
prints.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.client import NAMES, Client
from support.messages import contact, renewal
from support.polling import wait_until
from tests.e2e.commands import failed, ok, renewals
from tests.e2e.conftest import StartWorker

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here

DORA = contact("dora", "client.example")
ROOT = Path(__file__).resolve().parents[2]
DOCUMENTED_URL = "amqp://guest:guest@localhost:5672/"
WORKER = ".venv/bin/renewals run"


@dataclass
class Block:
    language: str
    lines: list[str]


def quick_start() -> list[Block]:
    """The fenced blocks of the README's Quick start, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Quick start\n", 1)[1].split("\n## ", 1)[0]
    return [
        Block(language, body.splitlines())
        for language, body in re.findall(r"^```(\w+)\n(.*?)^```$", section, flags=re.M | re.S)
    ]


def fresh_copy(folder: Path) -> Path:
    """The files git tracks, copied as they are now: what a clone of this tree would hold."""
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    copy = folder / "renewal-routing"
    for name in listed.stdout.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    return copy


def shell(
    line: str, cwd: Path, env: dict[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", line], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def matches(expected: list[str], printed: list[str]) -> bool:
    """`printed` is `expected`, where a `...` line stands for any lines."""
    if "..." not in expected:
        return printed == expected
    cut = expected.index("...")
    head, tail = expected[:cut], expected[cut + 1 :]
    return printed[: len(head)] == head and (not tail or printed[-len(tail) :] == tail)


def console(block: Block) -> list[tuple[str, list[str]]]:
    """`$ command` lines and the lines each is shown to print."""
    steps: list[tuple[str, list[str]]] = []
    for line in block.lines:
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            steps[-1][1].append(line)
    return steps


def test_the_quick_start_works_word_for_word(amqp_url: str, tmp_path: Path) -> None:
    """Install, broker URL, demo, worker, send the example event, see its notification, stop:
    each documented command succeeds on a fresh copy and prints what the README shows."""
    copy = fresh_copy(tmp_path)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("RENEWALS_", "VIRTUAL_ENV", "PYTHON"))
    }
    blocks = quick_start()
    assert [b.language for b in blocks] == ["sh", "sh", "console", "sh", "json", "console", "console"]
    worker: subprocess.Popen[str] | None = None
    worker_log = tmp_path / "worker.log"
    try:
        for block in blocks:
            if block.language == "json":  # the example shown is the example shipped
                shipped = json.loads((copy / "examples" / "renewal-approaching.json").read_text())
                assert json.loads("\n".join(block.lines)) == shipped
            elif block.language == "sh":
                for line in block.lines:
                    if line.startswith("export "):
                        name, value = line.removeprefix("export ").split("=", 1)
                        assert (name, value) == ("RENEWALS_AMQP_URL", DOCUMENTED_URL)
                        env[name] = amqp_url  # "put your own ... in its place"
                    elif line == WORKER:
                        with open(worker_log, "w") as log:
                            worker = subprocess.Popen(
                                ["bash", "-c", f"exec {line}"],
                                cwd=copy,
                                env=env,
                                stdout=log,
                                stderr=log,
                                text=True,
                            )
                        wait_for_line(worker, worker_log, "worker.consuming")
                    else:
                        done = shell(line, copy, env)
                        assert done.returncode == 0, f"{line}\n{done.stdout}\n{done.stderr}"
            else:
                for command, expected in console(block):
                    printed = shown_by(command, expected, copy, env)
                    assert matches(expected, printed), f"$ {command}\n" + "\n".join(printed)
        assert worker is not None, "the Quick start starts the worker"
        worker.send_signal(signal.SIGINT)  # step 7: Ctrl-C
        assert worker.wait(timeout=40) == 0, worker_log.read_text()
        assert (copy / "renewals.db").exists()  # "in the folder you start it from"
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
            worker.wait()
    assert "Traceback" not in worker_log.read_text()


def shown_by(command: str, expected: list[str], cwd: Path, env: dict[str, str]) -> list[str]:
    """What `command` prints (it must succeed); a command showing what the worker has done is
    asked again for a few seconds, as a person would, until it shows what the README shows."""
    deadline = time.monotonic() + 15
    while True:
        done = shell(command, cwd, env)
        assert done.returncode == 0, f"$ {command}\n{done.stdout}\n{done.stderr}"
        printed = done.stdout.rstrip("\n").splitlines()
        if matches(expected, printed) or time.monotonic() > deadline:
            return printed
        time.sleep(0.5)


def wait_for_line(process: subprocess.Popen[str], log: Path, event: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while event not in log.read_text():
        assert process.poll() is None, f"the worker exited {process.returncode}:\n{log.read_text()}"
        assert time.monotonic() < deadline, f"no {event} in {timeout} s:\n{log.read_text()}"
        time.sleep(0.1)


def test_notifications_shows_what_waits_unrouted_and_changes_nothing(
    amqp_url: str, client: Client, start_worker: StartWorker
) -> None:
    """`renewals notifications` lists each notification waiting in the unrouted queue, `--json`
    prints each body whole, and the queue holds as many afterwards."""
    start_worker()
    client.publish([renewal(f"c-{n}", None, decision_maker=DORA, id=f"evt-{n}") for n in (1, 2)])
    wait_until(lambda: client.count(NAMES.unrouted_queue) == 2, "two unrouted notifications")
    table = ok(renewals(amqp_url, "notifications")).stdout.splitlines()
    assert table[0].split() == ["#", "notification", "event", "client", "audience", "to", "cc"]
    assert [row.split()[2] for row in table[2:4]] == ["evt-1", "evt-2"]
    assert table[-1] == f"2 waiting in {NAMES.unrouted_queue}"
    bodies = [
        json.loads(line) for line in ok(renewals(amqp_url, "notifications", "--json")).stdout.splitlines()
    ]
    assert [body["data"]["causation_id"] for body in bodies] == ["evt-1", "evt-2"]
    assert {body["type"] for body in bodies} == {"NotificationRequested"}
    wait_until(lambda: client.count(NAMES.unrouted_queue) == 2, "the notifications back in place")


def test_send_before_anything_declared_says_so_and_topology_declare_fixes_it(amqp_url: str) -> None:
    """The README's troubleshooting: on a vhost where nothing is declared yet, `renewals send`
    fails naming the missing exchange; after `renewals topology --declare` it sends."""
    example = str(ROOT / "examples" / "renewal-approaching.json")
    missing = failed(renewals(amqp_url, "send", example))
    assert "exchange renewals.events does not exist" in missing and "renewals topology --declare" in missing
    ok(renewals(amqp_url, "topology", "--declare"))
    assert ok(renewals(amqp_url, "send", example)).stdout == "sent 1 event to renewals.events\n"


def test_the_documented_completion_prints_a_bash_script_that_completes() -> None:
    """The README's `eval "$(_RENEWALS_COMPLETE=bash_source renewals)"`, run by bash, defines
    the completion of `renewals`, and completing `renewals dlq re` offers replay and replays."""
    readme = (ROOT / "README.md").read_text()
    [documented] = re.findall(r'`(eval "\$\(_RENEWALS_COMPLETE=bash_source renewals\)")`', readme)
    script = (
        f"{documented}\n"
        "complete -p renewals\n"
        "COMP_WORDS=(renewals dlq re); COMP_CWORD=2; _renewals_completion renewals\n"
        'echo "offered: ${COMPREPLY[*]}"\n'
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "complete -o nosort -F _renewals_completion renewals" in done.stdout
    assert done.stdout.splitlines()[-1] == "offered: replay replays"
