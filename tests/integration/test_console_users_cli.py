"""`renewals console user list|add|passwd|remove` over a users file and the store's sessions,
on SQLite and PostgreSQL: the list shows names and roles and never a hash, a password is asked
for twice (hidden) without --password-stdin, and a new password or a removal ends the user's
sessions in the store at once."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from worker.cli import main
from worker.store import open_store
from worker.store.console_sessions import ConsoleSessionRecords

PASSWORD = "a long enough password"


class Users:
    def __init__(self, store_url: str, folder: Path) -> None:
        self.path = folder / "users.json"
        self.env = {"RENEWALS_CONSOLE_USERS": str(self.path), "RENEWALS_STORE_URL": store_url}
        self.store = open_store(store_url)
        self.store.migrate()
        self.sessions = ConsoleSessionRecords(self.store)

    def run(self, *args: str, input: str | None = None) -> Result:
        return CliRunner().invoke(main, ["console", "user", *args], input=input, env=self.env)

    def ok(self, *args: str, input: str | None = None) -> Result:
        result = self.run(*args, input=input)
        assert result.exit_code == 0, result.output
        return result

    def add(self, name: str, role: str) -> None:
        self.ok("add", name, "--role", role, "--password-stdin", input=PASSWORD + "\n")

    def signed_in(self, name: str, times: int) -> None:
        for n in range(times):
            self.sessions.start(f"sid-{name}-{n}", name, "fingerprint", now_us=1)


@pytest.fixture
def users(store_url: str, tmp_path: Path) -> Users:
    return Users(store_url, tmp_path)


def test_list_shows_names_and_roles_by_name_and_never_a_hash(users: Users) -> None:
    """`list` prints a table of names and roles, by name; `--json` the same as an array; no hash anywhere."""
    users.add("zoe", "operator")
    users.add("ann", "viewer")
    table = users.ok("list").stdout
    assert table.splitlines()[0].split() == ["name", "role"]
    assert [line.split() for line in table.splitlines()[2:]] == [["ann", "viewer"], ["zoe", "operator"]]
    assert json.loads(users.ok("list", "--json").stdout) == [
        {"name": "ann", "role": "viewer"},
        {"name": "zoe", "role": "operator"},
    ]
    assert "argon2" not in table + users.ok("list", "--json").stdout


def test_add_without_password_stdin_asks_twice_and_refuses_a_mismatch(users: Users) -> None:
    """Without --password-stdin, `add` asks for the password and its confirmation (not echoed);
    two different answers are asked again, and nothing is written until they match."""
    added = users.ok("add", "ann", "--role", "viewer", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert PASSWORD not in added.output and "Repeat for confirmation" in added.output
    assert json.loads(users.ok("list", "--json").stdout) == [{"name": "ann", "role": "viewer"}]
    mismatch = users.run("add", "bob", "--role", "viewer", input=f"{PASSWORD}\nsomething else!!\n")
    assert mismatch.exit_code == 1 and "do not match" in mismatch.output
    assert [row["name"] for row in json.loads(users.ok("list", "--json").stdout)] == ["ann"]


def test_passwd_sets_a_new_password_keeps_the_role_and_ends_the_user_s_sessions(users: Users) -> None:
    """`passwd NAME` (asked twice) replaces the hash, keeps the role, and ends NAME's two
    sessions in the store; another user's session stays; `--json` says the same as one object."""
    users.add("ann", "operator")
    users.add("bob", "viewer")
    before = json.loads(users.path.read_text())["users"]["ann"]["hash"]
    users.signed_in("ann", 2)
    users.signed_in("bob", 1)
    said = users.ok("passwd", "ann", input="another long password\nanother long password\n").stdout
    assert said.strip() == "ann has a new password; 2 sessions ended"
    after = json.loads(users.path.read_text())["users"]["ann"]
    assert after["hash"] != before and after["role"] == "operator"
    assert (users.sessions.count("ann"), users.sessions.count("bob")) == (0, 1)
    users.signed_in("ann", 1)
    document = json.loads(
        users.ok("passwd", "ann", "--password-stdin", "--json", input=PASSWORD + "\n").stdout
    )
    assert document == {"user": "ann", "sessions_ended": 1}


def test_passwd_of_an_unknown_user_or_a_short_password_is_one_line(users: Users) -> None:
    """`passwd` of a name not in the file, or with a password under 12 characters: exit 1, one line, nothing changed."""
    users.add("ann", "viewer")
    before = users.path.read_text()
    unknown = users.run("passwd", "nobody", "--password-stdin", input=PASSWORD + "\n")
    assert unknown.exit_code == 1 and unknown.output == f"Error: no console user 'nobody' in {users.path}\n"
    short = users.run("passwd", "ann", "--password-stdin", input="short\n")
    assert (
        short.exit_code == 1
        and short.output.strip() == "Error: password too short: use at least 12 characters"
    )
    assert users.path.read_text() == before


def test_remove_ends_the_user_s_sessions_at_once(users: Users) -> None:
    """`remove NAME` takes NAME out of the file and ends their sessions in the store now."""
    users.add("ann", "viewer")
    users.signed_in("ann", 3)
    said = users.ok("remove", "ann").stdout.strip()
    assert said == "ann is no longer a console user; 3 sessions ended"
    assert users.sessions.count("ann") == 0 and json.loads(users.ok("list", "--json").stdout) == []
    users.add("bob", "viewer")
    assert json.loads(users.ok("remove", "bob", "--json").stdout) == {"user": "bob", "sessions_ended": 0}
