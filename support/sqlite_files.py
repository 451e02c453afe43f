"""SQLite files that are no good as a store, for the tests of what the commands say about them."""

import sqlite3
from contextlib import closing
from pathlib import Path


def not_a_store(path: Path) -> None:
    """Some other file where the store should be (SQLite: "file is not a database")."""
    path.write_text("some other file, not a SQLite store\n" * 100)


def damaged_store(path: Path) -> None:
    """A SQLite file whose header is whole and whose first table's page is not (as a disk or a
    copy may leave it): opening it works, reading the schema's version does not (SQLite:
    "database disk image is malformed")."""
    with closing(sqlite3.connect(path)) as store:
        store.execute("CREATE TABLE schema_version (version INTEGER)")
        store.execute("INSERT INTO schema_version VALUES (1)")
        store.commit()
    pages = bytearray(path.read_bytes())
    page = int.from_bytes(pages[16:18], "big")
    pages[page : 2 * page] = b"\xff" * page
    path.write_bytes(pages)
