"""`renewals console`: serve the operations console, and manage its users file.

The console's libraries are an optional extra: they are imported only when a console command
runs, so `renewals run` works without them.
"""

import json
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Literal

import click

from worker.cli.core import CannotWork, load_settings, require_existing_store
from worker.failures import store_unavailable
from worker.store import SchemaTooNew, SchemaTooOld, StoreUnavailable, StoreUnusable
from worker.store.configured import open_configured_store
from worker.store.console_sessions import ConsoleSessionRecords
from worker.tools.tables import render

if TYPE_CHECKING:
    from worker.console.users import User, Users

INSTALL_HINT = "the console needs its extra: pip install 'renewal-routing[console]'"
PASSWORD_STDIN = "Read the password from standard input's first line (otherwise asked for, twice)."
AS_JSON = "One JSON object, for scripts."


def _console_package() -> ModuleType:
    try:
        import worker.console
    except ModuleNotFoundError as exc:
        raise click.ClickException(f"{INSTALL_HINT} (missing {exc.name})") from None
    return worker.console


@click.group("console", invoke_without_command=True, short_help="Serve the operations console.")
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
    except StoreUnusable as exc:
        raise click.ClickException(store_unavailable(settings.store_url, exc)) from None


@console.group("user", short_help="Manage the console's users file.")
def user() -> None:
    """Manage the console's users file (RENEWALS_CONSOLE_USERS)."""


@user.command("list", short_help="Every console user and their role.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array, for scripts.")
def list_users(as_json: bool) -> None:
    """Every console user of the users file and their role, by name; never a password hash."""
    package, path = _package_and_path()
    users = _users_file(package, path)
    rows = [{"name": found.name, "role": found.role} for found in sorted(users.users.values(), key=_name)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"no console users in {path}")
    else:
        click.echo(render(rows, ["name", "role"]))


@user.command("add", short_help="Add a user, or give one a new role.")
@click.argument("name")
@click.option("--role", type=click.Choice(["viewer", "operator"]), required=True, help="What they may do.")
@click.option("--password-stdin", is_flag=True, help=PASSWORD_STDIN)
@click.option("--json", "as_json", is_flag=True, help=AS_JSON)
def add(name: str, role: Literal["viewer", "operator"], password_stdin: bool, as_json: bool) -> None:
    """Add NAME (or set a new password and role), with an argon2 hash of the password.

    Without --password-stdin the password is asked for twice, not shown. The file is written
    readable by its owner only (0600).
    """
    package, path = _package_and_path()
    users = _users_file(package, path, missing_ok=True)
    try:
        users.add(name, role, _password(password_stdin))
    except package.ConsoleRefused as exc:  # the name or the password
        raise click.ClickException(str(exc)) from None
    _said(as_json, f"{name} is a console {role} in {path}", user=name, role=role, users_file=path)


@user.command("passwd", short_help="Give a user a new password.")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help=PASSWORD_STDIN)
@click.option("--json", "as_json", is_flag=True, help=AS_JSON)
def passwd(name: str, password_stdin: bool, as_json: bool) -> None:
    """Give NAME a new password (their role stays) and end their sessions in the console.

    Without --password-stdin the password is asked for twice, not shown.
    """
    package, path = _package_and_path()
    users = _users_file(package, path)
    try:
        users.set_password(name, _password(password_stdin))
    except package.ConsoleRefused as exc:  # no such user, or the password
        raise click.ClickException(str(exc)) from None
    ended = _end_sessions(name)
    _said(as_json, f"{name} has a new password; {_ended(ended)}", user=name, sessions_ended=ended)


@user.command("remove", short_help="Remove a user and end their sessions.")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help=AS_JSON)
def remove(name: str, as_json: bool) -> None:
    """Remove NAME from the users file and end their sessions in the console."""
    package, path = _package_and_path()
    users = _users_file(package, path)
    try:
        users.remove(name)
    except package.ConsoleRefused as exc:  # no such user
        raise click.ClickException(str(exc)) from None
    ended = _end_sessions(name)
    _said(as_json, f"{name} is no longer a console user; {_ended(ended)}", user=name, sessions_ended=ended)


def _package_and_path() -> tuple[ModuleType, str]:
    package = _console_package()
    settings = load_settings()
    if not settings.console_users:
        raise CannotWork("set RENEWALS_CONSOLE_USERS to the users file to manage")
    return package, settings.console_users


def _name(found: "User") -> str:
    return found.name


def _password(from_stdin: bool) -> str:
    """The password from standard input's first line, or asked for twice, hidden."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return password


def _end_sessions(name: str) -> int | None:
    """End every console session of `name` in the store; None when the store cannot be
    reached (the sessions then end at their next request, when the users file is read)."""
    settings = load_settings()
    try:
        require_existing_store(settings)
        store = open_configured_store(settings)
    except Exception:  # the users file changed already; the sessions follow it at their next request
        return None
    try:
        store.check_schema()
        return ConsoleSessionRecords(store).end_user(name)
    except Exception:  # a store of another release, or gone: as above
        return None
    finally:
        store.close()


def _ended(count: int | None) -> str:
    if count is None:
        return "their sessions end at their next request"
    return f"{count} session{'' if count == 1 else 's'} ended"


def _said(as_json: bool, line: str, **document: object) -> None:
    click.echo(json.dumps(document) if as_json else line)


def _users_file(package: ModuleType, path: str, *, missing_ok: bool = False) -> "Users":
    """The users file; one that cannot be read is a setting that cannot work (exit 78)."""
    try:
        users: Users = package.Users.load(Path(path), missing_ok=missing_ok)
    except package.ConsoleRefused as exc:
        raise CannotWork(str(exc)) from None
    return users
