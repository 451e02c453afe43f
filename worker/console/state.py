"""What the console holds while it runs: its settings, the ways in, the sessions, the password
throttle, the replays it runs, its looks at the broker, and one store connection per server
thread."""

import threading
from dataclasses import dataclass, field

from worker.console.access import Access
from worker.console.health import BrokerFigures, ConsoleHealth, ConsumingWatch, health
from worker.console.identity import Identity
from worker.console.runner import Runner
from worker.console.sessions import Session, Sessions
from worker.console.throttle import SignInThrottle
from worker.console.users import BasicChecks, User
from worker.dead_letters.records import DeadLetterRecords
from worker.settings import Settings
from worker.store import SqlStore
from worker.store.configured import open_configured_store
from worker.store.console_sessions import ConsoleSessionRecords


@dataclass
class Console:
    settings: Settings
    access: Access
    sessions: Sessions
    runner: Runner = field(init=False)
    broker_figures: BrokerFigures = field(init=False)
    consuming: ConsumingWatch = field(init=False)
    basic_checks: BasicChecks = field(init=False)
    throttle: SignInThrottle = field(init=False)
    _local: threading.local = field(default_factory=threading.local)

    def __post_init__(self) -> None:
        self.runner = Runner(self.settings, self.open_store)
        self.broker_figures = BrokerFigures(self.settings)
        self.consuming = ConsumingWatch(self.settings.queue)
        self.basic_checks = BasicChecks(self.sessions.key)
        self.throttle = SignInThrottle(
            free_failures=self.settings.console_sign_in_free_failures,
            lockout=self.settings.console_lockout_seconds,
            checks_at_once=self.settings.console_password_checks,
        )

    def start_session(self, user: User) -> Session:
        """Sign `user` in: a new session, kept in the store (run in a worker thread)."""
        return self.sessions.start(ConsoleSessionRecords(self.store()), user)

    def end_sessions(self, user: str) -> int:
        """Sign `user` out everywhere (run in a worker thread); how many sessions ended."""
        return ConsoleSessionRecords(self.store()).end_user(user)

    def signed_in(self, session: Session) -> Identity | None:
        """Who `session` signs in now (run in a worker thread: it asks the store)."""
        if session.user is None or self.access.users is None:
            return None
        users = self.access.users.refresh()
        if users.problem is not None:
            return None  # closed while the file is unusable; the sessions stand for when it is fixed
        return self.sessions.identity(
            ConsoleSessionRecords(self.store()), session, users.users.get(session.user)
        )

    def health(self) -> ConsoleHealth:
        """The health strip's figures now (run in a worker thread: it asks the store)."""
        return health(self.settings, self.store, self.broker_figures, self.consuming)

    def unconsumed(self) -> str | None:
        """Why a replay now would wait in a queue no worker takes from, in one line; None if a
        worker is seen consuming (or the broker cannot be asked: the replay will say so)."""
        found = self.health()
        return None if found.broker_error is not None else found.not_consuming or found.queues_missing

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
