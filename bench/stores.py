"""A fresh store for every worker run, and what it holds: a new SQLite file per run, or, on a
PostgreSQL `--store-url`, a new schema per run in that database (its URL sets the
`search_path`), dropped at the end. The workers of one run share its store."""

import re
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit

import psycopg

# The tables retention keeps level: their row counts are reported as a run grows.
PRUNED_TABLES = ("inbox", "reminders")


class RunStores:
    def __init__(self, store_url: str | None, folder: Path) -> None:
        self._base = store_url
        self._folder = folder
        self._schemas: list[str] = []

    @property
    def postgres(self) -> bool:
        return self._base is not None and self._base.startswith(("postgresql:", "postgres:"))

    def new(self, name: str) -> str:
        """The URL of an empty store for the run called `name`."""
        if self._base is None:
            return f"sqlite:///{self._folder / (name + '.db')}"
        if not self.postgres:
            return self._base  # a given SQLite file: shared by every run, as asked
        schema = f"bench_{re.sub(r'[^a-z0-9]+', '_', name.lower())}_{uuid.uuid4().hex[:6]}"
        with psycopg.connect(self._base, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
        self._schemas.append(schema)
        separator = "&" if urlsplit(self._base).query else "?"
        return f"{self._base}{separator}options={quote(f'-csearch_path={schema}')}"

    def server(self) -> dict[str, str] | None:
        """What the PostgreSQL server says that bears on the store's size: its version and
        whether autovacuum runs (without it, the space of pruned rows is never reused)."""
        if not self.postgres:
            return None
        assert self._base is not None
        with psycopg.connect(self._base) as connection:
            found = connection.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('server_version', 'autovacuum')"
            ).fetchall()
        return {str(name): str(setting) for name, setting in found}

    def drop_all(self) -> None:
        """Drop the schemas made for the runs (a SQLite file goes with the run's folder)."""
        if not self._schemas:
            return
        assert self._base is not None
        with psycopg.connect(self._base, autocommit=True) as connection:
            for schema in self._schemas:
                connection.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        self._schemas.clear()


def store_bytes(store_url: str) -> int | None:
    """The store's size on disk: SQLite file plus WAL, or the PostgreSQL tables of its schema
    (indexes and TOAST included); None if unknown."""
    if store_url.startswith("sqlite:"):
        path = Path(store_url.removeprefix("sqlite://").removeprefix("/"))
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())
    if store_url.startswith(("postgresql:", "postgres:")):
        with psycopg.connect(store_url) as connection:
            row = connection.execute(
                "SELECT sum(pg_total_relation_size(oid)) FROM pg_class"
                " WHERE relkind = 'r'"
                " AND relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema())"
            ).fetchone()
        return int(row[0]) if row and row[0] is not None else None
    return None


def store_rows(store_url: str) -> dict[str, int]:
    """Rows in the tables that retention prunes."""
    if store_url.startswith("sqlite:"):
        import sqlite3

        path = store_url.removeprefix("sqlite://").removeprefix("/")
        with sqlite3.connect(path) as lite:
            return {t: int(lite.execute(f"SELECT count(*) FROM {t}").fetchone()[0]) for t in PRUNED_TABLES}
    with psycopg.connect(store_url) as connection:
        counts = {}
        for table in PRUNED_TABLES:
            row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
            counts[table] = int(row[0]) if row else 0
        return counts
