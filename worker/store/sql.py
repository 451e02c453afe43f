"""The store the worker uses: one connection (`SqlConnection`) and the parts that record over it,
as eventsourcing keeps one recorder per concern over one datastore. `migrations`, `outbox` and
`retention` each hold their own statements; `transaction()` gives a batch its `SqlTransaction`.
SQLite and PostgreSQL share every statement; a `Backend` says what differs.

Last-writer-wins writes are single conditional statements: the database, not the worker,
decides whether a stamp is newer.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date

from worker.store.backend import Backend
from worker.store.connection import RunnerFor, SqlConnection, WhileCommitting, direct
from worker.store.ledger_writes import Confirmed
from worker.store.migrations import Migrations
from worker.store.model import OutboxRow
from worker.store.outbox import OutboxRows
from worker.store.projection import SqlTransaction
from worker.store.projection_writes import ReportedWrites
from worker.store.retention import RetentionRows

__all__ = ["SqlStore", "SqlTransaction"]


class SqlStore(SqlConnection):
    """One connection, used by one thread at a time, and every part of the store over it."""

    def __init__(self, backend: Backend, *, runner: RunnerFor = direct) -> None:
        super().__init__(backend, runner=runner(backend.kind))
        # The batch's write strategy, chosen once by the backend; the reporting one serves the
        # single-kind writes, which always say which rows stood.
        self._writes = backend.writes()
        self._reported = ReportedWrites(backend)
        self.migrations = Migrations(self, backend)
        self.outbox = OutboxRows(self, backend, self._writes.ledger)
        self.retention = RetentionRows(self)

    @contextmanager
    def transaction(self, *, while_committing: WhileCommitting | None = None) -> Iterator[SqlTransaction]:
        """A batch: committed when the block ends cleanly, rolled back otherwise;
        `while_committing` runs while the COMMIT waits (`SqlConnection.writing`)."""
        with self.writing(while_committing=while_committing):
            yield SqlTransaction(self, self._backend, self._writes, self._reported)

    @property
    def one_writer(self) -> bool:
        """One writer at a time (SQLite): a batch can decide outside the write lock, then check
        under it that nobody wrote meanwhile (`others_commits`)."""
        return self._backend.others_commits is not None

    def others_commits(self) -> int:
        """A number that changes whenever another connection commits (SQLite's data_version);
        read inside a transaction, it is that transaction's view."""
        query = self._backend.others_commits
        if query is None:
            raise NotImplementedError("this store lets many writers in at once")
        return int(self.execute(query).fetchone()[0])

    @contextmanager
    def read_only(self) -> Iterator[SqlTransaction]:
        """A transaction for commands that only look: it takes no write lock, so it neither waits
        for the worker's batches nor holds them up (and PostgreSQL refuses a write in it)."""
        with self.reading():
            yield SqlTransaction(self, self._backend, self._writes, self._reported)

    # --- the parts' calls, as the rest of the worker makes them -----------------------------

    def schema_version(self) -> int:
        return self.migrations.version()

    def migrate(self) -> tuple[int, int]:
        return self.migrations.migrate()

    def check_schema(self) -> None:
        self.migrations.check()

    def unsent(self, seqs: Sequence[int]) -> list[OutboxRow]:
        return self.outbox.unsent(seqs)

    def claim_orphans(self, *, now_us: int, grace_us: int, limit: int) -> list[OutboxRow]:
        return self.outbox.claim_orphans(now_us=now_us, grace_us=grace_us, limit=limit)

    def outbox_stats(self) -> tuple[int, int | None]:
        return self.outbox.stats()

    def set_aside(self, seq: int, reason: str) -> None:
        self.outbox.set_aside(seq, reason)

    def set_aside_rows(self) -> list[tuple[OutboxRow, str]]:
        return self.outbox.set_aside_rows()

    def delete_confirmed(self, seqs: Sequence[int | Confirmed]) -> None:
        self.outbox.delete_confirmed(seqs)

    def forget_attempts(self, message_key: str) -> None:
        self.retention.forget_attempts(message_key)

    def prune(
        self,
        *,
        processed_before_us: int,
        renewals_before: date,
        limit: int,
        ledger_before_us: int | None = None,
    ) -> int:
        return self.retention.prune(
            processed_before_us=processed_before_us,
            renewals_before=renewals_before,
            limit=limit,
            ledger_before_us=ledger_before_us,
        )
