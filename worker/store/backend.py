"""What differs between SQLite and PostgreSQL, as the store's parts see it: a `Backend` says
how to connect, how to spell a few constructs, how a batch writes its projection back, and
what the driver's errors mean. Every statement is written once, with `?` placeholders."""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from events import Contact
from handlers import OwnerSetting, ReminderKey, SettingKey, Versioned
from worker.store.schema import SchemaMigration

if TYPE_CHECKING:  # the ledger's strategies are written with this module's Statements
    from worker.store.ledger_writes import EachLedgerWrites, LedgerWrites

# Rows per multi-row statement (SQLite allows 32766 parameters; PostgreSQL 65535).
CHUNK = 500


class DriverConnection(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def cursor(self) -> Any: ...
    def close(self) -> None: ...


class Statements(Protocol):
    """What a write strategy needs of the store's connection."""

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any: ...

    def execute_many(self, statement: str, rows: Iterable[Sequence[Any]]) -> None: ...


class ProjectionWrites(Protocol):
    """How a batch writes its projection back (`worker.store.projection_writes` has the two),
    and, in `ledger`, its reminder ledger and owner history (`worker.store.ledger_writes`)."""

    ledger: "LedgerWrites | EachLedgerWrites"

    def settings(
        self, db: Statements, settings: Mapping[SettingKey, Versioned[OwnerSetting]]
    ) -> set[SettingKey]:
        """Write each setting unless the stored one is as new or newer; the keys written."""
        ...

    def decision_makers(self, db: Statements, contacts: Mapping[str, Versioned[Contact]]) -> None:
        """Keep, per client, whichever of the stored and the given decision maker is newer."""
        ...

    def reminders(self, db: Statements, claims: Mapping[ReminderKey, str]) -> set[ReminderKey]:
        """Record the reminders as sent; the keys that were not already recorded."""
        ...

    def enqueue(self, db: Statements, rows: Sequence[Any]) -> list[int]:
        """Insert outbox rows (`projection_writes.OutboxValues`); their numbers, in order."""
        ...


class Backend(Protocol):
    kind: str
    begin: str  # starts a batch's transaction
    begin_read_only: str  # starts a transaction that only reads, and takes no write lock
    binary_collation: str  # compares event ids by code point
    skip_locked: str  # appended to a SELECT that claims rows other workers may be claiming
    # A query whose answer changes whenever another connection commits (None: not known). Where
    # one writer at a time holds the store, a batch decides before it takes the write lock and
    # checks with it that nobody wrote in between (worker/service/processing.py).
    others_commits: str | None

    @property
    def description(self) -> str:
        """The URL, password masked."""
        ...

    @property
    def placeholders(self) -> Callable[[str], str] | None:
        """Turns a statement written with `?` placeholders into the driver's own style (None:
        the driver takes `?`). Called for every statement, so it should remember its answers."""
        ...

    def writes(self) -> ProjectionWrites:
        """How a batch writes its projection back: chosen once, when the store is built."""
        ...

    def connect(self) -> DriverConnection: ...

    def rows(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        """A row source for `INSERT INTO t (columns) <source>`, and its parameters."""
        ...

    def table(self, types: Sequence[str], rows: Sequence[Sequence[Any]]) -> tuple[str, list[Any]]:
        """The rows as a table `k` with columns `column1`, `column2`... for a FROM clause."""
        ...

    def any_of(self, type_: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """`<column> <this>`: the column is one of the values."""
        ...

    def lock_schema(self, connection: DriverConnection) -> None:
        """Start a transaction that holds the migration lock until it ends."""
        ...

    def statements(self, migration: SchemaMigration) -> tuple[str, ...]: ...

    def classify(self, error: Exception, connection: DriverConnection | None) -> type[Exception] | None:
        """StoreUnavailable, StoreConflict, or None for any other error."""
        ...


def chunks(items: Sequence[Any]) -> Iterator[list[Any]]:
    """The items, `CHUNK` at a time: one multi-row statement each, within either backend's limit."""
    items = list(items)
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]
