"""Stores: the projection, the inbox, reminder keys and the outbox, one transaction per batch.

`open_store(url)` picks the backend by URL scheme: `sqlite:///path` (the embedded default)
or `postgresql://...`.
"""

from worker.store.sql import Batch, OutboxRow, SqlStore


def open_store(url: str) -> SqlStore:
    """Connect to the store named by `url` and create its schema if needed."""
    if url.startswith("sqlite:"):
        from worker.store.sqlite import open_sqlite

        return open_sqlite(url)
    if url.startswith(("postgresql:", "postgres:")):
        from worker.store.postgres import open_postgres

        return open_postgres(url)
    raise ValueError(f"unsupported store URL scheme in {url.split(':', 1)[0]!r}: use sqlite: or postgresql:")


__all__ = ["Batch", "OutboxRow", "SqlStore", "open_store"]
