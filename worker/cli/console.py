"""`renewals console`: serve the operations console, and manage its users file.

The console's libraries are an optional extra: they are imported only when a console command
runs, so `renewals run` works without them.
"""

import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import click

from worker.cli.core import CannotWork, load_settings
from worker.failures import store_unavailable
from worker.store import SchemaTooNew, SchemaTooOld, StoreUnavailable

if TYPE_CHECKING:
    from worker.console.users import Users

INSTALL_HINT = "the console needs its extra: pip install 'renewal-routing[console]'"


def _console_package() -> ModuleType:
    try:
        import worker.console
    except ModuleNotFoundError as exc:
        raise click.ClickException(f"{INSTALL_HINT} (missing {exc.name})") from None
    return worker.console


@click.group("console", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8400, show_default=True, type=click.IntRange(1, 65535), help="Port.")
@click.pass_context
def console(ctx: click.Context, host: str, port: int) -> None:
    """Serve the operations console (dead letters, replays, owners, health) in the browser.

    Closed by default: configure a users file (RENEWALS_CONSOLE_USERS, see `console user add`)
    or a trusted sign-in proxy (RENEWALS_CONSOLE_PROXY_*); docs/console.md has the details.
    """
    if ctx.invoked_subcommand is not None:
        return
    package = _console_package()
    settings = load_settings()
    try:
        package.serve(settings, host, port)
    except package.ConsoleRefused as exc:  # no way in, an unusable users file, its port taken
        raise CannotWork(str(exc)) from None
    except (SchemaTooOld, SchemaTooNew) as exc:  # a store of another release, as `renewals run` says
        raise CannotWork(str(exc)) from None
    except StoreUnavailable as exc:
        raise click.ClickException(store_unavailable(settings.store_url, exc)) from None


@console.group("user")
def user() -> None:
    """Manage the console's users file (RENEWALS_CONSOLE_USERS)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), required=True, help="What they may do.")
@click.option("--password-stdin", is_flag=True, required=True, help="Read the password from standard input.")
def add(name: str, role: Literal["viewer", "operator"], password_stdin: bool) -> None:
    """Add NAME (or set a new password and role), with an argon2 hash of the password.

    The file is written readable by its owner only (0600).
    """
    package = _console_package()
    settings = load_settings()
    if not settings.console_users:
        raise CannotWork("set RENEWALS_CONSOLE_USERS to the users file to manage")
    password = sys.stdin.readline().rstrip("\r\n")
    users = _users_file(package, settings.console_users, missing_ok=True)
    try:
        users.add(name, role, password)
    except package.ConsoleRefused as exc:  # the name or the password
        raise click.ClickException(str(exc)) from None
    click.echo(f"{name} is a console {role} in {settings.console_users}")


@user.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove NAME from the users file; their sessions end at their next request."""
    package = _console_package()
    settings = load_settings()
    if not settings.console_users:
        raise CannotWork("set RENEWALS_CONSOLE_USERS to the users file to manage")
    users = _users_file(package, settings.console_users)
    try:
        users.remove(name)
    except package.ConsoleRefused as exc:  # no such user
        raise click.ClickException(str(exc)) from None
    click.echo(f"{name} is no longer a console user; their sessions end at their next request")


def _users_file(package: ModuleType, path: str, *, missing_ok: bool = False) -> "Users":
    """The users file; one that cannot be read is a setting that cannot work (exit 78)."""
    try:
        users: Users = package.Users.load(Path(path), missing_ok=missing_ok)
    except package.ConsoleRefused as exc:
        raise CannotWork(str(exc)) from None
    return users
