"""What the store hands out and what it raises, whatever the backend."""

from dataclasses import dataclass, replace

from handlers import ReminderKey, SettingKey


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """A notification committed but maybe not yet confirmed by the broker; `seq` is its place
    in the outbox once stored."""

    notification_id: str
    correlation_id: str
    routing_key: str
    body: bytes
    seq: int | None = None

    def with_seq(self, seq: int) -> "OutboxRow":
        return replace(self, seq=seq)


class StoreError(Exception):
    """The store layer's one root: every error `worker.store` raises of its own is one."""


class StoreUnavailable(StoreError):
    """The store cannot be used now (connection lost, server restarting or refusing
    connections, file locked past the busy timeout): wait, reconnect, and do the batch again.
    Never a reason to spend a message's retry attempts."""


class StoreRefused(StoreError):
    """The database answered and refused us: it does not exist, or the user or password is
    wrong, or the server allows this user no access. No retry can fix it; the message says what
    to fix."""


class StoreUnusable(StoreError):
    """The store answered but cannot be used as it is (a damaged SQLite file, say): no wait
    cures it, and no setting names it. One line, and exit status 1: a supervisor may try again."""


class StoreConflict(StoreError):
    """Two transactions got in each other's way (deadlock, serialization failure, lock or
    statement timeout): do the batch again, in-process."""


@dataclass(frozen=True, slots=True)
class Written:
    """What a batch's write-back achieved: the settings it wrote (the others were older than
    the stored ones) and the reminders it claimed (the others were claimed already)."""

    settings: set[SettingKey]
    reminders: set[ReminderKey]
