"""What password guessing costs the console: `python -m bench.console_guessing [--renewals PATH]
[--clients 40] [--seconds 20]`.

A measurement, not a test. It starts `renewals console` (the one at PATH, so an older release
can be measured the same way) over a fresh SQLite store and a users file, then lets N clients,
each from its own loopback address (127.0.1.x), send HTTP Basic requests with wrong passwords
as fast as they are answered, in two rounds: all guessing one real user's password, then each
request a new user name. It prints, per round, the answers by status, password checks per second
(401s: each one ran argon2), the console's peak memory (VmHWM, and the highest VmRSS sampled),
and how long after the guessing stops the guessed user's right password signs in (from
127.0.0.1, an address that did not guess).
"""

import argparse
import base64
import http.client
import itertools
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from support.console import OPERATOR, VIEWER, free_port, users_file
from support.polling import wait_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--renewals", default=str(Path(sys.executable).parent / "renewals"))
    parser.add_argument("--clients", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=20.0)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = {
            round_name: _round(Path(folder) / round_name, arguments, round_name)
            for round_name in ("one user", "many names")
        }
    print(json.dumps(results, indent=2))


def _round(folder: Path, arguments: argparse.Namespace, round_name: str) -> dict[str, Any]:
    folder.mkdir(parents=True)
    port = free_port()
    env = {
        **os.environ,
        "RENEWALS_STORE_URL": f"sqlite:///{folder / 'renewals.db'}",
        "RENEWALS_AMQP_URL": "amqp://guest:guest@127.0.0.1:9/",
        "RENEWALS_CONSOLE_USERS": str(users_file(folder)),
        "RENEWALS_LOG_LEVEL": "error",
    }
    with open(folder / "console.log", "wb") as log:
        command = [arguments.renewals, "console", "--port", str(port)]
        console = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # Ready when the operator signs in; the viewer's right password is tried only at the end
        # (a right password is remembered for a minute, and would skip the password check).
        wait_until(
            lambda: _status(port, OPERATOR) == 200, timeout=60, what="the console answering", every=0.2
        )
        baseline = _memory(console.pid)
        statuses: Counter[int] = Counter()  # 0: the connection failed
        counting = threading.Lock()
        peak = [0]
        stop = threading.Event()
        names = itertools.count()

        def guess(number: int) -> None:
            address = f"127.0.1.{number + 1}"
            connection = _connect(port, address)
            while not stop.is_set():
                name = VIEWER[0] if round_name == "one user" else f"guess{next(names)}"
                try:
                    status = _ask(connection, name, "not-the-password")
                except (OSError, http.client.HTTPException):
                    status = 0
                    connection.close()
                    connection = _connect(port, address)
                with counting:
                    statuses[status] += 1
            connection.close()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], _memory(console.pid)["VmRSS"])
                time.sleep(0.1)

        threads = [threading.Thread(target=guess, args=(n,)) for n in range(arguments.clients)]
        threads.append(threading.Thread(target=sample))
        started = time.monotonic()
        for thread in threads:
            thread.start()
        time.sleep(arguments.seconds)
        stop.set()
        for thread in threads:
            thread.join(120)
        elapsed = time.monotonic() - started
        stopped = time.monotonic()
        wait_until(lambda: _status(port, VIEWER) == 200, timeout=120, what="the right password", every=0.25)
        back_after = time.monotonic() - stopped
        memory = _memory(console.pid)
        return {
            "clients": arguments.clients,
            "seconds": round(elapsed, 1),
            "answers": dict(sorted(statuses.items())),
            "answers_per_second": round(sum(statuses.values()) / elapsed, 1),
            "password_checks_per_second": round(statuses[401] / elapsed, 1),
            "rss_before_mib": round(baseline["VmRSS"] / 1024),
            "rss_peak_sampled_mib": round(peak[0] / 1024),
            "rss_high_water_mib": round(memory["VmHWM"] / 1024),
            "right_password_back_after_seconds": round(back_after, 1),
        }
    finally:
        console.send_signal(signal.SIGTERM)
        try:
            console.wait(20)
        except subprocess.TimeoutExpired:
            console.kill()
            console.wait()


def _connect(port: int, address: str) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=60, source_address=(address, 0))


def _ask(connection: http.client.HTTPConnection, name: str, password: str) -> int:
    token = base64.b64encode(f"{name}:{password}".encode()).decode()
    connection.request("GET", "/api/groups", headers={"Authorization": f"Basic {token}"})
    response = connection.getresponse()
    response.read()
    return response.status


def _status(port: int, user: tuple[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        return _ask(connection, *user)
    except OSError:
        return 0
    finally:
        connection.close()


def _memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of the process, in KiB."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            found[key] = int(value.split()[0])
    return found


if __name__ == "__main__":
    main()
