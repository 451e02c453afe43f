"""What the console holds while it runs: its settings, the ways in, the session key, and one
store connection per server thread."""

import threading
from dataclasses import dataclass, field

from worker.console.access import Access
from worker.console.sessions import Sessions
from worker.settings import Settings
from worker.store import SqlStore, open_store


@dataclass
class Console:
    settings: Settings
    access: Access
    sessions: Sessions
    _local: threading.local = field(default_factory=threading.local)

    def store(self) -> SqlStore:
        """This thread's connection to the worker's store (opened on first use)."""
        store: SqlStore | None = getattr(self._local, "store", None)
        if store is None:
            settings = self.settings
            store = open_store(
                settings.store_url,
                lock_timeout=settings.store_lock_timeout,
                statement_timeout=settings.store_statement_timeout,
                idle_in_transaction_timeout=settings.store_idle_in_transaction_timeout,
            )
            self._local.store = store
        return store
