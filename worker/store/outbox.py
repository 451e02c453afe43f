"""The outbox: notifications committed with their batch and published after it. What is not yet
confirmed is read back, claimed by one worker when its writer died, set aside when it can never
be published, and deleted once the broker confirms it."""

import time
from collections.abc import Iterable, Sequence
from typing import Any

from worker.store.backend import Backend, chunks
from worker.store.connection import SqlConnection
from worker.store.ledger_writes import Confirmed, EachLedgerWrites, LedgerWrites
from worker.store.model import OutboxRow

COLUMNS = "seq, notification_id, correlation_id, routing_key, body"


class OutboxRows:
    """Each call a short transaction of its own (or a single statement), between batches."""

    def __init__(
        self, connection: SqlConnection, backend: Backend, ledger: LedgerWrites | EachLedgerWrites
    ) -> None:
        self._db = connection
        self._backend = backend
        self._ledger = ledger

    def unsent(self, seqs: Sequence[int]) -> list[OutboxRow]:
        """These outbox rows, if still there, oldest first."""
        rows: list[OutboxRow] = []
        for chunk in chunks(sorted(seqs)):
            one_of, params = self._backend.any_of("bigint", chunk)
            rows += outbox_rows(
                self._db.execute(
                    f"SELECT {COLUMNS} FROM outbox WHERE seq {one_of} AND set_aside IS NULL ORDER BY seq",
                    params,
                ).fetchall()
            )
        return rows

    def claim_orphans(self, *, now_us: int, grace_us: int, limit: int) -> list[OutboxRow]:
        """Outbox rows older than the grace period that nobody has claimed within it: left by
        a worker that died before its broker confirmed them. Claimed for one grace period, so
        no other worker publishes them meanwhile; rows other workers are claiming right now
        are skipped, not waited for."""
        with self._db.writing():
            claimed = self._db.execute(
                "UPDATE outbox SET claimed_until_us = ? WHERE seq IN ("
                " SELECT seq FROM outbox WHERE created_at_us <= ? AND COALESCE(claimed_until_us, 0) <= ?"
                " AND set_aside IS NULL"
                f" ORDER BY seq LIMIT ?{self._backend.skip_locked}) RETURNING {COLUMNS}",
                (now_us + grace_us, now_us - grace_us, now_us, limit),
            ).fetchall()
        return sorted(outbox_rows(claimed), key=lambda row: row.seq or 0)

    def stats(self) -> tuple[int, int | None]:
        """Rows in the outbox to publish, and when the oldest was written (µs since the epoch;
        None: empty). Rows set aside are not counted."""
        count, oldest = self._db.execute(
            "SELECT count(*), min(created_at_us) FROM outbox WHERE set_aside IS NULL"
        ).fetchone()
        return int(count), None if oldest is None else int(oldest)

    def set_aside(self, seq: int, reason: str) -> None:
        """Keep an outbox row that can never be published, with the reason, and never publish
        it again (nor count it as pending): it stays for an operator to read."""
        with self._db.writing():
            self._db.execute("UPDATE outbox SET set_aside = ? WHERE seq = ?", (reason[:1000], seq))

    def set_aside_rows(self) -> list[tuple[OutboxRow, str]]:
        """The rows set aside, oldest first, each with its reason."""
        rows = self._db.execute(
            f"SELECT {COLUMNS}, set_aside FROM outbox WHERE set_aside IS NOT NULL ORDER BY seq"
        ).fetchall()
        return [(row, str(found[-1])) for row, found in zip(outbox_rows(rows), rows, strict=True)]

    def delete_confirmed(self, seqs: Sequence[int | Confirmed]) -> None:
        """Drop confirmed rows, in a transaction of their own."""
        if seqs:
            with self._db.writing():
                delete(self._db, self._backend, seqs, self._ledger)


def delete(
    connection: SqlConnection,
    backend: Backend,
    seqs: Iterable[int | Confirmed],
    ledger: LedgerWrites | EachLedgerWrites,
) -> None:
    """Drop these confirmed rows, in the transaction under way, stamping the reminder ledger's
    rows they notified with when they were published and confirmed (a bare seq: confirmed now)."""
    confirmed = [_confirmed(item, time.time_ns() // 1000) for item in seqs]
    if not confirmed:
        return
    ledger.confirmed(connection, confirmed)
    for chunk in chunks(sorted(item.seq for item in confirmed)):
        one_of, params = backend.any_of("bigint", chunk)
        connection.execute(f"DELETE FROM outbox WHERE seq {one_of}", params)


def _confirmed(item: int | Confirmed, now_us: int) -> Confirmed:
    return item if isinstance(item, Confirmed) else Confirmed(item, None, now_us)


def outbox_rows(rows: Iterable[Sequence[Any]]) -> list[OutboxRow]:
    return [OutboxRow(row[1], row[2], row[3], bytes(row[4]), row[0]) for row in rows]
