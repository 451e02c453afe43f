"""Files we write go through a private temporary file created exclusively, never following a
link, then renamed into place: a planted link is never written through, a failed write leaves
the old file whole, and the result is readable by its owner only, whatever the umask."""

import json
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from worker.cli import main
from worker.private_files import private_file, write_private


def test_console_user_add_does_not_follow_a_planted_temporary_file_link(tmp_path: Path) -> None:
    """A `users.json.tmp` link planted by someone else is left alone, and its target untouched."""
    users = tmp_path / "users.json"
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    (tmp_path / "users.json.tmp").symlink_to(target)
    result = CliRunner().invoke(
        main,
        ["console", "user", "add", "ann", "--role", "viewer", "--password-stdin"],
        input="a long enough password\n",
        env={"RENEWALS_CONSOLE_USERS": str(users)},
    )
    assert result.exit_code == 0, result.output
    assert target.read_text() == "keep me"
    assert not users.is_symlink() and "ann" in json.loads(users.read_text())["users"]
    assert stat.S_IMODE(users.stat().st_mode) == 0o600


def test_console_user_remove_takes_the_user_out_of_the_file(tmp_path: Path) -> None:
    """`console user remove NAME` writes the file again without NAME; an unknown name is one line."""
    users = tmp_path / "users.json"
    env = {"RENEWALS_CONSOLE_USERS": str(users)}
    for name in ("ann", "bob"):
        add = ["console", "user", "add", name, "--role", "viewer", "--password-stdin"]
        assert CliRunner().invoke(main, add, input="a long enough password\n", env=env).exit_code == 0
    removed = CliRunner().invoke(main, ["console", "user", "remove", "ann"], env=env)
    assert removed.exit_code == 0 and "sessions end" in removed.output
    assert list(json.loads(users.read_text())["users"]) == ["bob"]
    unknown = CliRunner().invoke(main, ["console", "user", "remove", "ann"], env=env)
    assert unknown.exit_code == 1 and unknown.output == f"Error: no console user 'ann' in {users}\n"


def test_a_link_at_the_target_is_replaced_not_written_through(tmp_path: Path) -> None:
    """Writing over a path that is a link replaces the link itself; the file it pointed at stays."""
    target = tmp_path / "elsewhere.txt"
    target.write_text("keep me")
    path = tmp_path / "out.json"
    path.symlink_to(target)
    write_private(path, "new")
    assert target.read_text() == "keep me" and not path.is_symlink() and path.read_text() == "new"


def test_the_file_is_private_whatever_the_umask_and_no_temporary_file_stays(tmp_path: Path) -> None:
    """Mode 0600 under umask 0, and only the target is left in the folder."""
    old = os.umask(0)
    try:
        write_private(tmp_path / "out.txt", "text")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.txt").stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_a_failed_write_leaves_the_old_file_whole(tmp_path: Path) -> None:
    """An error half-way through changes nothing and removes the temporary file."""
    path = tmp_path / "out.txt"
    write_private(path, "old contents")
    with pytest.raises(RuntimeError), private_file(path) as stream:
        stream.write("half of the new")
        raise RuntimeError("disk full, say")
    assert path.read_text() == "old contents" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_without_replace_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    """`replace=False` refuses a file (or link) already at the path, and leaves no temporary file."""
    path = tmp_path / "out.txt"
    path.write_text("theirs")
    with pytest.raises(FileExistsError):
        write_private(path, "ours", replace=False)
    assert path.read_text() == "theirs" and [p.name for p in tmp_path.iterdir()] == ["out.txt"]
