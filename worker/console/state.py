"""What the console holds while it runs: its settings, the ways in, the session key, the
replays it runs, and one store connection per server thread."""

import threading
from dataclasses import dataclass, field

from worker.app import open_configured_store
from worker.console.access import Access
from worker.console.health import BrokerFigures
from worker.console.runner import Runner
from worker.console.sessions import Sessions
from worker.console.users import BasicChecks
from worker.settings import Settings
from worker.store import SqlStore
from worker.store.dead_letters import DeadLetterRecords


@dataclass
class Console:
    settings: Settings
    access: Access
    sessions: Sessions
    runner: Runner = field(init=False)
    broker_figures: BrokerFigures = field(init=False)
    basic_checks: "BasicChecks" = field(init=False)
    _local: threading.local = field(default_factory=threading.local)

    def __post_init__(self) -> None:
        self.runner = Runner(self.settings, self.open_store)
        self.broker_figures = BrokerFigures(self.settings)
        self.basic_checks = BasicChecks(self.sessions.key)

    def open_store(self) -> SqlStore:
        return open_configured_store(self.settings)

    def store(self) -> SqlStore:
        """This thread's connection to the worker's store (opened on first use)."""
        store: SqlStore | None = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = self.open_store()
        return store

    def records(self) -> DeadLetterRecords:
        return DeadLetterRecords(self.store())
