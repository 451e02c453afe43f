"""Stores: the projection, the inbox, reminder keys, crash counts and the outbox (the dead-letter
records, over the same store, are `worker.dead_letters.records`).

`open_store(url)` picks the backend by URL scheme: `sqlite:///path` (the embedded default)
or `postgresql://...`. A batch is one transaction of a few set-based statements over a
`WorkingSet` that the handlers use as their projection.

The parts, each over one connection (`connection`): `migrations`, `outbox`, `retention`, the
batch's `projection` with its write strategy (`projection_writes`);
`sql.SqlStore` gathers them for the worker, `backend` says what differs between databases;
`configured.open_configured_store(settings)` is how every process opens the configured one.
"""

from worker.store.connection import RunnerFor, WhileCommitting, direct
from worker.store.model import (
    OutboxRow,
    StoreConflict,
    StoreError,
    StoreRefused,
    StoreUnavailable,
    StoreUnusable,
    Written,
)
from worker.store.schema import LATEST as SCHEMA_VERSION
from worker.store.schema import SchemaTooNew, SchemaTooOld
from worker.store.sql import SqlStore, SqlTransaction
from worker.store.working_set import Changes, WorkingSet


def open_store(
    url: str,
    *,
    lock_timeout: float = 5.0,
    statement_timeout: float = 30.0,
    idle_in_transaction_timeout: float = 60.0,
    runner: RunnerFor = direct,
) -> SqlStore:
    """Connect to the store named by `url` (the schema is not touched: see `SqlStore.migrate`);
    its statements reach the driver through `runner(kind)` (tracing's, when it is on)."""
    if url.startswith("sqlite:"):
        from worker.store.sqlite import sqlite_backend

        return SqlStore(sqlite_backend(url, busy_timeout=lock_timeout), runner=runner)
    if url.startswith(("postgresql:", "postgres:")):
        from worker.store.postgres import postgres_backend

        return SqlStore(
            postgres_backend(
                url,
                lock_timeout=lock_timeout,
                statement_timeout=statement_timeout,
                idle_in_transaction_timeout=idle_in_transaction_timeout,
            ),
            runner=runner,
        )
    raise ValueError(f"unsupported store URL scheme in {url.split(':', 1)[0]!r}: use sqlite: or postgresql:")


__all__ = [
    "SCHEMA_VERSION",
    "Changes",
    "OutboxRow",
    "RunnerFor",
    "SchemaTooNew",
    "SchemaTooOld",
    "SqlStore",
    "SqlTransaction",
    "StoreConflict",
    "StoreError",
    "StoreRefused",
    "StoreUnavailable",
    "StoreUnusable",
    "WhileCommitting",
    "WorkingSet",
    "Written",
    "direct",
    "open_store",
]
