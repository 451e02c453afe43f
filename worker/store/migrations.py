"""The schema's version: read it, bring the store up to this code's, or refuse a store that is
not at it. Any number of workers may migrate at once: one does, the others wait for the schema
lock and find nothing left to do."""

import time

from worker.store.backend import Backend
from worker.store.connection import SqlConnection
from worker.store.model import StoreUnavailable
from worker.store.schema import LATEST, MIGRATIONS, VERSION_TABLE, SchemaTooNew, SchemaTooOld


class Migrations:
    def __init__(self, connection: SqlConnection, backend: Backend) -> None:
        self._db = connection
        self._backend = backend

    def version(self) -> int:
        """The version the store is at (0: empty, or made before versions were recorded)."""
        try:
            with self._db.reading():
                row = self._db.execute("SELECT max(version) FROM schema_version").fetchone()
        except StoreUnavailable:
            raise
        except Exception as exc:
            if _no_such_table(exc):
                return 0  # no version table yet
            raise  # a damaged store, say: never taken for an empty one
        return int(row[0] or 0)

    def migrate(self) -> tuple[int, int]:
        """Apply the missing migrations under the schema lock; (version before, version after)."""
        with self._db.schema_locked():
            self._db.execute(VERSION_TABLE)
            found = int(self._db.execute("SELECT max(version) FROM schema_version").fetchone()[0] or 0)
            if found > LATEST:
                raise SchemaTooNew(found)
            for migration in MIGRATIONS[found:]:
                for statement in self._backend.statements(migration):
                    self._db.execute(statement)
                self._db.execute(
                    "INSERT INTO schema_version (version, description, applied_at_us) VALUES (?, ?, ?)",
                    (migration.version, migration.description, time.time_ns() // 1000),
                )
        return found, max(found, LATEST)

    def check(self) -> None:
        """SchemaTooNew or SchemaTooOld unless the store is at this code's version."""
        found = self.version()
        if found > LATEST:
            raise SchemaTooNew(found)
        if found < LATEST:
            raise SchemaTooOld(found)


def _no_such_table(error: Exception) -> bool:
    """The version table is missing: SQLite's "no such table", PostgreSQL's "does not exist"."""
    said = str(error)
    return "no such table" in said or ("schema_version" in said and "does not exist" in said)
