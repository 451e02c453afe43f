"""The one way the worker, `renewals` and the console open the configured store: the URL and the
timeouts from settings, the schema untouched (the caller migrates or checks it)."""

from worker.settings import Settings
from worker.store import RunnerFor, SqlStore, direct, open_store


def open_configured_store(settings: Settings, *, runner: RunnerFor = direct) -> SqlStore:
    """The configured store with the configured timeouts, its schema untouched."""
    return open_store(
        settings.store_url,
        lock_timeout=settings.store_lock_timeout,
        statement_timeout=settings.store_statement_timeout,
        idle_in_transaction_timeout=settings.store_idle_in_transaction_timeout,
        runner=runner,
    )
