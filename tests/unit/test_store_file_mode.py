"""The SQLite store holds personal data: its file, its WAL and its shared-memory file are
created readable by their owner only, whatever the umask."""

import os
import stat
from pathlib import Path

from worker.store import open_store


def test_a_new_sqlite_store_and_its_wal_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    """Under umask 0o022 (files would be 0644), the store, its -wal and -shm files are 0600."""
    previous = os.umask(0o022)
    try:
        store = open_store(f"sqlite:///{tmp_path / 'renewals.db'}")
        try:
            store.migrate()
            modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in tmp_path.iterdir()}
        finally:
            store.close()
    finally:
        os.umask(previous)
    assert {"renewals.db", "renewals.db-wal"} <= set(modes), modes
    assert set(modes.values()) == {0o600}, {name: oct(mode) for name, mode in modes.items()}
