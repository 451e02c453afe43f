"""The console is an optional extra: the `renewals` command imports none of its libraries
unless a console command runs, and without them says in one line how to install them."""

import subprocess
import sys

CONSOLE_LIBRARIES = ("fastapi", "starlette", "uvicorn", "jinja2", "argon2", "itsdangerous", "multipart")

# Runs the CLI in a fresh interpreter where the console's libraries cannot be imported.
WITHOUT_EXTRA = """
import sys
for name in {libraries!r}:
    sys.modules[name] = None  # an import of it now fails as if it were not installed
from worker.cli import main
main({arguments!r})
"""


def _without_extra(*arguments: str) -> subprocess.CompletedProcess[str]:
    script = WITHOUT_EXTRA.format(libraries=CONSOLE_LIBRARIES, arguments=list(arguments))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_the_cli_imports_no_console_library() -> None:
    """Importing the `renewals` command loads none of the console's libraries."""
    check = f"import sys, worker.cli; print([m for m in {CONSOLE_LIBRARIES!r} if m in sys.modules])"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


def test_the_worker_commands_work_without_the_extra() -> None:
    """`renewals run --help` and `renewals topology` need nothing of the console."""
    assert _without_extra("run", "--help").returncode == 0
    result = _without_extra("topology", "--json")
    assert result.returncode == 0 and '"queues"' in result.stdout, result.stderr


def test_the_console_without_the_extra_says_how_to_install_it() -> None:
    """`renewals console` without the extra: exit 1 and one line naming the pip command."""
    for arguments in (["console"], ["console", "user", "add", "ann", "--role", "viewer", "--password-stdin"]):
        result = _without_extra(*arguments)
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert "pip install 'renewal-routing[console]'" in result.stderr
