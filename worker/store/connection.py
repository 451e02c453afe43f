"""One DB-API connection, used by one thread at a time (a COMMIT may run on its helper thread
while the caller waits for it, `writing(while_committing=...)`): statements, transactions, and
errors translated into the store's own (`StoreUnavailable`, `StoreConflict`...); reopened by
`reconnect()` after an outage. The store's parts (migrations, outbox, retention, the batch's
projection) all run their statements through it, and it hands each to the driver through its
`StatementRunner`, chosen when the store is built: `DIRECT`, or tracing's
(`worker.tracing.store`), which sees every statement."""

import contextvars
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import Any, Protocol

from worker.store.backend import Backend, DriverConnection
from worker.store.model import StoreUnavailable


class StatementRunner(Protocol):
    """How a statement reaches the driver's connection."""

    def execute(self, connection: DriverConnection, statement: str, params: Sequence[Any]) -> Any: ...

    def execute_many(
        self, connection: DriverConnection, statement: str, rows: Iterable[Sequence[Any]]
    ) -> None: ...


class Direct:
    """Each statement straight to the driver."""

    def execute(self, connection: DriverConnection, statement: str, params: Sequence[Any]) -> Any:
        return connection.execute(statement, params)

    def execute_many(
        self, connection: DriverConnection, statement: str, rows: Iterable[Sequence[Any]]
    ) -> None:
        connection.cursor().executemany(statement, rows)


DIRECT = Direct()

WhileCommitting = Callable[[Callable[[], bool]], None]
"""Work for the thread that ends a transaction while its COMMIT waits for the disk or the server
(`SqlConnection.writing`); it is given `committing()`, true until the COMMIT is done."""

RunnerFor = Callable[[str], StatementRunner]
"""The runner for a store of a kind (`sqlite`, `postgresql`)."""


def direct(_kind: str) -> StatementRunner:
    return DIRECT


class SqlConnection:
    def __init__(self, backend: Backend, *, runner: StatementRunner = DIRECT) -> None:
        self._backend = backend
        self._runner = runner
        self.kind = backend.kind
        self.description = backend.description
        # The placeholder style is settled here, once; each distinct statement is rewritten once.
        self._placeholders = backend.placeholders
        self._connection: DriverConnection | None = None
        self._committer: ThreadPoolExecutor | None = None  # `writing(while_committing=...)`'s helper
        self._connection = self._connect()

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        if self._connection is None:
            raise StoreUnavailable("not connected")
        if self._placeholders is not None:
            statement = self._placeholders(statement)
        try:
            return self._runner.execute(self._connection, statement, params)
        except Exception as exc:
            raise self._translated(exc) from exc

    def execute_many(self, statement: str, rows: Iterable[Sequence[Any]]) -> None:
        if self._connection is None:
            raise StoreUnavailable("not connected")
        if self._placeholders is not None:
            statement = self._placeholders(statement)
        try:
            self._runner.execute_many(self._connection, statement, rows)
        except Exception as exc:
            raise self._translated(exc) from exc

    def reconnect(self) -> None:
        """Drop the connection and open a new one (StoreUnavailable if that fails too)."""
        self._close_quietly()
        self._connection = self._connect()

    def ping(self) -> None:
        """Raise StoreUnavailable unless the store answers now."""
        self.execute("SELECT 1").fetchall()

    def close(self) -> None:
        self._close_quietly()

    @contextmanager
    def writing(self, *, while_committing: WhileCommitting | None = None) -> Iterator[None]:
        """A transaction that may write: committed when the block ends cleanly, rolled back
        otherwise. On SQLite it holds the write lock from its start.

        `while_committing`: work for this thread while the COMMIT waits for the disk (SQLite's
        WAL sync, PostgreSQL's server): the COMMIT runs on a helper thread meanwhile, and the
        block ends when both are done. The work must not use this connection and must not
        raise (what it raises is not the transaction's failure)."""
        self.execute(self._backend.begin)
        with self._ended(while_committing):
            yield

    @contextmanager
    def reading(self) -> Iterator[None]:
        """A transaction that only reads: one consistent view, no write lock taken (SQLite),
        and any write refused (PostgreSQL). Readers never wait for the worker's batches."""
        self.execute(self._backend.begin_read_only)
        with self._ended():
            yield

    @contextmanager
    def schema_locked(self) -> Iterator[None]:
        """A transaction that holds the migration lock, which one migrating process at a time
        takes."""
        if self._connection is None:
            raise StoreUnavailable("not connected")
        try:
            self._backend.lock_schema(self._connection)
        except Exception as exc:
            raise self._translated(exc) from exc
        with self._ended():
            yield

    @contextmanager
    def _ended(self, while_committing: WhileCommitting | None = None) -> Iterator[None]:
        """Commit the transaction begun when the block ends cleanly; roll it back otherwise."""
        try:
            yield
        except BaseException:
            with suppress(StoreUnavailable):  # the connection is gone, and the transaction with it
                self.execute("ROLLBACK")
            raise
        if while_committing is None:
            self.execute("COMMIT")
        else:
            self._commit_while(while_committing)

    def _commit_while(self, work: WhileCommitting) -> None:
        """COMMIT on the helper thread while `work` runs here; the COMMIT's error, if any,
        raised here once both are done. The driver lets go of the interpreter while it waits
        for the disk or the server, so the two overlap; the helper starts first (`sleep(0)`
        hands it the interpreter), or it would wait for this thread's next pause."""
        if self._committer is None:
            self._committer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-commit")
        context = contextvars.copy_context()  # a tracer's span around the COMMIT keeps its parent
        committed = self._committer.submit(context.run, self.execute, "COMMIT")
        time.sleep(0)
        try:
            work(lambda: not committed.done())
        finally:
            committed.result()

    def _connect(self) -> DriverConnection:
        try:
            return self._backend.connect()
        except Exception as exc:
            raise self._translated(exc) from exc

    def _translated(self, error: Exception) -> Exception:
        kind = self._backend.classify(error, self._connection)
        return error if kind is None else kind(f"{type(error).__name__}: {error}".strip())

    def _close_quietly(self) -> None:
        if self._committer is not None:
            self._committer.shutdown(wait=True)
            self._committer = None
        if self._connection is not None:
            with suppress(Exception):  # closing a broken connection may fail; it is gone either way
                self._connection.close()
            self._connection = None
