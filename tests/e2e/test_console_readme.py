"""The README's console lines, run as written: add a user to a new users file, start
`renewals console` on a fresh store, and a script reaches the API as that user."""

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from support.console import ConsoleProcess

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here

ROOT = Path(__file__).resolve().parents[2]
RENEWALS = str(Path(sys.executable).parent / "renewals")


def readme_console_lines() -> list[str]:
    """The shell lines of the README's Console section."""
    section = (ROOT / "README.md").read_text().split("## Console\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("  #", 1)[0].strip() for line in block.splitlines() if line.strip()]


def test_the_readmes_lines_bring_up_the_console(amqp_url: str, tmp_path: Path) -> None:
    """Install (the test extra already did), add a user, `renewals console`: the API answers as them."""
    lines = readme_console_lines()
    assert lines == [
        ".venv/bin/pip install -q -e '.[console]'",
        "export RENEWALS_CONSOLE_USERS=console-users.json",
        ".venv/bin/renewals console user add alice --role operator --password-stdin < alice.password",
        ".venv/bin/renewals console",
    ]
    (tmp_path / "alice.password").write_text("a long and secret password\n")
    env = {
        **os.environ,
        "RENEWALS_CONSOLE_USERS": lines[1].split("=", 1)[1],
        "RENEWALS_STORE_URL": f"sqlite:///{tmp_path / 'renewals.db'}",
        "RENEWALS_AMQP_URL": amqp_url,
    }
    add = lines[2].replace(".venv/bin/renewals", RENEWALS)
    result = subprocess.run(
        add, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert oct((tmp_path / "console-users.json").stat().st_mode & 0o777) == "0o600"

    console = ConsoleProcess(
        {**env, "RENEWALS_CONSOLE_USERS": str(tmp_path / "console-users.json")}, tmp_path / "console.log"
    )
    console.start()
    try:
        credentials = base64.b64encode(b"alice:a long and secret password").decode()
        request = urllib.request.Request(
            console.url + "/api/health", headers={"Authorization": f"Basic {credentials}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            health = json.load(response)
        assert health["ready"] is True and health["store_error"] is None and health["broker_error"] is None
        assert health["queues_missing"].startswith("renewals.worker, renewals.worker.dlq")  # no worker ran
        try:
            urllib.request.urlopen(console.url + "/api/health", timeout=10)
            raise AssertionError("the API answered without credentials")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
    finally:
        console.stop()
