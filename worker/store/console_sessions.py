"""The console's signed-in sessions, kept on the server so that they can end: at sign-out, when
the user's password or role changes or they are removed, and after the idle and absolute
timeouts. A row holds a digest of the session id (the cookie's secret never reaches the
store), the user, the fingerprint of the user's credentials it was made with, and two times."""

import hashlib
from dataclasses import dataclass

from worker.store.connection import SqlConnection


@dataclass(frozen=True, slots=True)
class StoredSession:
    user: str
    fingerprint: str
    created_at_us: int
    seen_at_us: int


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class ConsoleSessionRecords:
    """The `console_sessions` table, over one connection (this thread's)."""

    def __init__(self, connection: SqlConnection) -> None:
        self._db = connection

    def start(self, sid: str, user: str, fingerprint: str, *, now_us: int) -> None:
        with self._db.writing():
            self._db.execute(
                "INSERT INTO console_sessions (sid_digest, user_name, fingerprint, created_at_us, seen_at_us)"
                " VALUES (?, ?, ?, ?, ?)",
                (_digest(sid), user, fingerprint, now_us, now_us),
            )

    def find(self, sid: str) -> StoredSession | None:
        row = self._db.execute(
            "SELECT user_name, fingerprint, created_at_us, seen_at_us FROM console_sessions"
            " WHERE sid_digest = ?",
            (_digest(sid),),
        ).fetchone()
        return None if row is None else StoredSession(str(row[0]), str(row[1]), int(row[2]), int(row[3]))

    def touch(self, sid: str, *, now_us: int) -> None:
        with self._db.writing():
            self._db.execute(
                "UPDATE console_sessions SET seen_at_us = ? WHERE sid_digest = ?", (now_us, _digest(sid))
            )

    def end(self, sid: str) -> None:
        with self._db.writing():
            self._db.execute("DELETE FROM console_sessions WHERE sid_digest = ?", (_digest(sid),))

    def end_user(self, user: str, *, except_fingerprint: str | None = None) -> int:
        """End every session of `user` (but those made with `except_fingerprint`); how many."""
        with self._db.writing():
            cursor = self._db.execute(
                "DELETE FROM console_sessions WHERE user_name = ? AND fingerprint <> ?",
                (user, except_fingerprint or ""),
            )
            return int(cursor.rowcount or 0)

    def prune(self, *, idle_before_us: int, created_before_us: int) -> int:
        """Forget the sessions that timed out; how many."""
        with self._db.writing():
            cursor = self._db.execute(
                "DELETE FROM console_sessions WHERE seen_at_us < ? OR created_at_us < ?",
                (idle_before_us, created_before_us),
            )
            return int(cursor.rowcount or 0)

    def count(self, user: str | None = None) -> int:
        condition, params = ("WHERE user_name = ?", (user,)) if user is not None else ("", ())
        with self._db.reading():
            row = self._db.execute(f"SELECT count(*) FROM console_sessions {condition}", params).fetchone()
        return int(row[0])
