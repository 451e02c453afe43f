"""`renewals store migrate` and `renewals store status` against real stores, SQLite and PostgreSQL."""

import json
from pathlib import Path

from click.testing import CliRunner, Result

from worker.cli import main
from worker.exits import EX_CONFIG, EX_REFUSED
from worker.store import SCHEMA_VERSION, open_store


def renewals(store_url: str, *args: str) -> Result:
    return CliRunner().invoke(main, ["store", *args], env={"RENEWALS_STORE_URL": store_url})


def status(store_url: str) -> dict[str, object]:
    result = renewals(store_url, "status", "--json")
    assert result.exit_code == 0, result.output
    found: dict[str, object] = json.loads(result.stdout)
    return found


def test_migrate_brings_an_empty_store_to_the_latest_version_once(store_url: str) -> None:
    """An empty store says so, is migrated from 0 to the latest, then has nothing left to do."""
    if store_url.startswith("sqlite:"):
        open_store(store_url).close()  # status refuses a SQLite path with no file: a typo
    assert status(store_url) == {"store": store_url, "version": 0, "latest": SCHEMA_VERSION, "state": "empty"}
    first = renewals(store_url, "migrate")
    assert first.exit_code == 0 and f"from schema version 0 to {SCHEMA_VERSION}" in first.stdout
    again = renewals(store_url, "migrate")
    assert again.exit_code == 0 and "nothing to do" in again.stdout
    assert status(store_url)["state"] == "current"
    assert f"schema version {SCHEMA_VERSION}" in renewals(store_url, "status").stdout


def test_a_newer_schema_is_reported_and_not_migrated_naming_both_versions(store_url: str) -> None:
    """A store migrated by a later release: status says `newer`, migrate stops (exit 78) in one line naming both versions."""
    store = open_store(store_url)
    store.migrate()
    with store.transaction():
        store.execute("INSERT INTO schema_version VALUES (?, 'from the future', 0)", (SCHEMA_VERSION + 1,))
    store.close()
    assert status(store_url)["state"] == "newer"
    stopped = renewals(store_url, "migrate")
    assert stopped.exit_code == EX_CONFIG
    [line] = stopped.output.strip().splitlines()
    assert f"version {SCHEMA_VERSION + 1}" in line and f"version {SCHEMA_VERSION} " in line


def test_status_of_a_missing_sqlite_file_is_an_error_not_a_new_store(tmp_path: Path) -> None:
    """A mistyped SQLite path is a database that does not exist (exit 77), and no file is created."""
    result = renewals(f"sqlite:///{tmp_path / 'typo.db'}", "status")
    assert result.exit_code == EX_REFUSED and "no store at" in result.output
    assert not (tmp_path / "typo.db").exists()


def test_owners_show_refuses_a_store_of_another_release_in_one_line(store_url: str) -> None:
    """`owners show` reads the projection only at this release's schema, as every command that
    reads the store: an older one names `renewals store migrate`, a newer one both versions;
    exit 78, one line, no traceback."""
    store = open_store(store_url)
    store.migrate()
    with store.transaction():  # as a store the first release left, as far as its version says
        store.execute("DELETE FROM schema_version WHERE version > 1")
    older = CliRunner().invoke(
        main, ["owners", "show", "--partner", "p1"], env={"RENEWALS_STORE_URL": store_url}
    )
    assert older.exit_code == EX_CONFIG, older.output
    [line] = older.output.strip().splitlines()
    assert "version 1, older" in line and "renewals store migrate" in line

    with store.transaction():
        store.execute("INSERT INTO schema_version VALUES (?, 'from the future', 0)", (SCHEMA_VERSION + 1,))
    store.close()
    newer = CliRunner().invoke(
        main, ["owners", "show", "--partner", "p1"], env={"RENEWALS_STORE_URL": store_url}
    )
    assert newer.exit_code == EX_CONFIG, newer.output
    [line] = newer.output.strip().splitlines()
    assert f"version {SCHEMA_VERSION + 1}" in line and f"version {SCHEMA_VERSION} " in line
