"""One batch of deliveries: parse, decide and record in one transaction; say what to publish.

Deciding, not doing: nothing here talks to the broker. The batch's state is read up front in
a few set-based queries into a `WorkingSet`, the handlers run against it in memory, and what
they changed is written back in a few multi-row statements. The database has the last word
on every last-writer-wins write and every reminder claim: where another worker got there
first, the outcome says so.
"""

import hashlib
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from events import InvalidInput, NotificationRequestedData, OwnerChanged, RenewalApproaching
from handlers import HANDLERS, Decision, HandlerMap, ReminderKey, SettingKey, needs_of
from worker.dead_letters.fates import ReplayFates
from worker.messaging import Delivery, EncodedSize, Outgoing
from worker.service.failures import Failure, FailurePolicy
from worker.service.intake import read
from worker.service.ledger import Handled, ledger_rows
from worker.service.notifications import NotificationWriter, Writer, time_of
from worker.service.outbox import Outbox
from worker.service.outcomes import Outcome
from worker.settings import Settings
from worker.store import (
    Changes,
    OutboxRow,
    SqlStore,
    SqlTransaction,
    StoreConflict,
    StoreUnavailable,
    WhileCommitting,
    WorkingSet,
    Written,
)
from worker.store.ledger_writes import Confirmed, HistoryRow, LedgerRow

Event = RenewalApproaching | OwnerChanged


@dataclass(frozen=True, slots=True)
class Result:
    """What happened to one delivery: the log line's name and fields, what to publish
    (`outbox_seq` when that is a notification kept in the outbox until confirmed), and what
    the metrics count it by (the event, the notification, the failure)."""

    delivery: Delivery
    outcome: Outcome
    fields: dict[str, Any]
    outgoing: Outgoing | None = None
    outbox_seq: int | None = None
    event: "Event | None" = None
    notification: NotificationRequestedData | None = None
    failure: Failure | None = None


class _Stale(Exception):
    """Another worker handled one of the batch's events after it decided, before it wrote."""


@dataclass(frozen=True, slots=True)
class _Plan:
    """A decided batch's writes, made before they are written: the changes, and the outbox rows
    and ledger rows of what was assumed to stand (`written`)."""

    work: WorkingSet
    outcomes: list["Result | _Decided"]
    failed: list[str]
    changes: Changes
    written: Written
    rows: list[OutboxRow]
    ledger: tuple[list[LedgerRow], list[HistoryRow]]


@dataclass(frozen=True, slots=True)
class _Decided:
    delivery: Delivery
    event: Event
    decision: Decision


class Processor(Protocol):
    """What the session asks of batch processing: `BatchProcessor`, or a wrapper of it (tracing's
    `worker.tracing.spans.TracedProcessor`, chosen by the composition root)."""

    def process(
        self,
        deliveries: Sequence[Delivery],
        *,
        settled_key: str | None = None,
        while_committing: WhileCommitting | None = None,
    ) -> list[Result]: ...

    def process_redelivered(self, delivery: Delivery) -> list[Result]: ...

    def flush(self) -> None: ...

    def message(self, row: OutboxRow) -> Outgoing: ...


class BatchProcessor:
    """Turns deliveries into results; the store transaction is the unit of work."""

    def __init__(
        self,
        settings: Settings,
        store: SqlStore,
        handlers: HandlerMap = HANDLERS,
        *,
        outbox: Outbox,
        encoded_size: EncodedSize,
        writer: Writer | None = None,
        on_conflict: Callable[[], None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._on_conflict = on_conflict
        self._store = store
        self._handlers = handlers
        self._failures = FailurePolicy(settings, encoded_size=encoded_size)
        self._max_future = timedelta(seconds=settings.max_clock_skew)
        self._writer = writer or NotificationWriter(settings.source, settings.notifications_exchange)
        self._outbox = outbox  # its confirmed rows are deleted by the next transaction
        self._fates = ReplayFates(store)  # replayed letters whose copies this batch handles resolve
        self.decided_again = 0  # batches decided again under the write lock (SQLite; see _transaction)

    def process(
        self,
        deliveries: Sequence[Delivery],
        *,
        settled_key: str | None = None,
        while_committing: WhileCommitting | None = None,
    ) -> list[Result]:
        """Handle a chunk of deliveries in one transaction; a failing one never spoils the others.

        A transaction that ran into another one (deadlock, lock timeout) is done again here, a
        few times, before its deliveries count a failed attempt. StoreUnavailable is raised:
        the caller waits for the store and calls again; nothing was committed.

        `while_committing`: the caller's work to do while the batch's COMMIT waits for the disk
        (`SqlConnection.writing`); it must not raise, and may run more than once.
        """
        now = datetime.now(UTC)
        parsed = [self._parse(delivery, now) for delivery in deliveries]
        deletions = self._outbox.take_deletions()
        committed = False
        try:
            for redo in range(self._settings.store_conflict_redos + 1):
                try:
                    results = self._transaction(parsed, now, settled_key, deletions, while_committing)
                except StoreConflict as exc:
                    self._on_conflict()
                    if redo < self._settings.store_conflict_redos:
                        time.sleep(random.uniform(0, 0.02 * (redo + 1)))  # let the other transaction finish
                        continue
                    return [self._failed(d, self._failures.handle(d, exc)) for d in deliveries]
                except StoreUnavailable:
                    raise
                except Exception as exc:  # the transaction itself failed: every delivery goes round again
                    return [self._failed(d, self._failures.handle(d, exc)) for d in deliveries]
                committed = True
                return results
            raise AssertionError("unreachable")  # pragma: no cover
        finally:
            if not committed:
                self._outbox.give_back(deletions)

    def process_redelivered(self, delivery: Delivery) -> list[Result]:
        """A delivery that was in hand when a worker died: handle it alone, counting each try
        in the store first, so the one message a worker keeps dying on is dead-lettered."""
        key = hashlib.sha256(delivery.body).hexdigest()
        deletions = self._outbox.take_deletions()
        try:
            with self._store.transaction() as transaction:
                transaction.delete_confirmed(deletions)
                crashes = transaction.note_attempt(key, _micros(datetime.now(UTC))) - 1
        except BaseException:
            self._outbox.give_back(deletions)
            raise
        if crashes < self._settings.max_crashes:
            return self.process([delivery], settled_key=key)
        detail = f"a worker died {crashes} times while handling this message"
        failure = self._failures.dead_letter(delivery, "retries_exhausted", detail, crashes, kind="bug")
        self._store.forget_attempts(key)
        return [self._failed(delivery, failure)]

    def flush(self) -> None:
        """Drop confirmed rows now (when idle, and at shutdown), so nobody republishes them."""
        deletions = self._outbox.take_deletions()
        try:
            self._store.delete_confirmed(deletions)
        except BaseException:
            self._outbox.give_back(deletions)
            raise

    def message(self, row: OutboxRow) -> Outgoing:
        return self._writer.message(row)

    def _parse(self, delivery: Delivery, now: datetime) -> Result | tuple[Delivery, Event]:
        try:
            return delivery, read(delivery, now=now, max_future=self._max_future)
        except InvalidInput as exc:
            return self._failed(delivery, self._failures.handle(delivery, exc))

    def _transaction(
        self,
        parsed: Sequence[Result | tuple[Delivery, Event]],
        now: datetime,
        settled_key: str | None,
        deletions: Sequence[Confirmed],
        while_committing: WhileCommitting | None = None,
    ) -> list[Result]:
        """Decide the batch and write it in one transaction, which is first to record the events
        in the inbox (`fresh`: those not handled before).

        Where one writer at a time holds the store (SQLite), the batch first decides in a
        read-only transaction, while other workers' batches write, and takes the write lock
        only to write. If another worker committed in between, its writes report what stood, as
        on PostgreSQL (where a batch's reads do not hold other writers back either): a newer
        setting or a reminder claimed meanwhile wins, and the outcome says so. Only if another
        worker handled one of the same events meanwhile does the batch decide again, under the
        lock."""
        now_us = _micros(now)
        ids = [item[1].id for item in parsed if isinstance(item, tuple)]
        if self._store.one_writer:
            with self._store.read_only() as view:
                before = self._store.others_commits()
                work = WorkingSet(view)
                plan = self._plan(work, *self._decide(parsed, work, None, now), now)
            try:
                with self._store.transaction(while_committing=while_committing) as transaction:
                    self._settle(transaction, settled_key, deletions)
                    if len(transaction.record_events(ids, now_us)) < len(set(ids)):
                        raise _Stale
                    raced = self._store.others_commits() != before
                    return self._write(transaction, plan, now, now_us, raced=raced)
            except _Stale:
                self.decided_again += 1
        with self._store.transaction(while_committing=while_committing) as transaction:
            self._settle(transaction, settled_key, deletions)
            fresh = transaction.record_events(ids, now_us)
            work = WorkingSet(transaction)
            plan = self._plan(work, *self._decide(parsed, work, fresh, now), now)
            return self._write(transaction, plan, now, now_us)

    def _decide(
        self,
        parsed: Sequence[Result | tuple[Delivery, Event]],
        work: WorkingSet,
        fresh: set[str] | None,
        now: datetime,
    ) -> tuple[list[Result | _Decided], list[str]]:
        """Run the handlers over the working set, each event's changes undone alone if it fails;
        `fresh` are the events not handled before (None: all of them). The outcomes, in
        delivery order, and the ids of the events that failed."""
        fresh = {item[1].id for item in parsed if isinstance(item, tuple)} if fresh is None else set(fresh)
        work.preload(needs_of(item[1] for item in parsed if isinstance(item, tuple) and item[1].id in fresh))
        outcomes: list[Result | _Decided] = []
        failed: list[str] = []
        for item in parsed:
            if isinstance(item, Result):
                outcomes.append(item)
                continue
            delivery, event = item
            if event.id not in fresh:
                outcomes.append(Result(delivery, "message.duplicate_event", _fields(event), event=event))
                continue
            fresh.discard(event.id)  # the same id twice in one batch: the second is a repeat
            try:
                with work.event():
                    decision = self._handlers[type(event)](event, projection=work, now=now)
                    if decision.notification is not None:
                        self._writer.check(decision.notification)
            except Exception as exc:
                failed.append(event.id)
                outcomes.append(self._failed(delivery, self._failures.handle(delivery, exc), event))
                continue
            outcomes.append(_Decided(delivery, event, decision))
        return outcomes, failed

    @staticmethod
    def _settle(transaction: SqlTransaction, settled_key: str | None, deletions: Sequence[Confirmed]) -> None:
        """What the transaction carries besides the batch: confirmed outbox rows to delete, and
        the crash count of a redelivered message now handled."""
        transaction.delete_confirmed(deletions)
        if settled_key is not None:
            transaction.forget_attempts(settled_key)

    def _plan(
        self,
        work: WorkingSet,
        outcomes: list[Result | _Decided],
        failed: list[str],
        now: datetime,
        written: Written | None = None,
    ) -> "_Plan":
        """What the decided batch writes: its changes, the outbox rows of the reminders claimed,
        the ledger's rows. `written`: the settings and claims that stood (None: all of them, as
        they do unless another worker wrote the same keys meanwhile)."""
        changes = work.changes()
        settings = set(changes.settings) if written is None else written.settings
        claims = set(changes.reminders) if written is None else written.reminders
        time_json = time_of(now)
        rows = [
            self._writer.row(item.decision.notification, time_json)
            for item in outcomes
            if isinstance(item, _Decided)
            and item.decision.notification is not None
            and _reminder(item.decision) in claims
        ]
        ledger = ledger_rows(
            _handled(outcomes),
            notified={row.notification_id for row in rows},
            settings_written=settings,
            projection=work,
            now=now,
            now_us=_micros(now),
        )
        return _Plan(work, outcomes, failed, changes, Written(settings, claims), rows, ledger)

    def _write(
        self, transaction: SqlTransaction, plan: "_Plan", now: datetime, now_us: int, *, raced: bool = False
    ) -> list[Result]:
        """Write the plan; the database decides which settings and claims stand (`raced`: the
        batch decided in an earlier transaction, and other workers have written since). Where
        some did not, the plan's rows are made again for what stood."""
        if plan.failed:
            transaction.forget_events(plan.failed)  # not processed: handled again when it returns
        written = transaction.write(plan.changes, raced=raced)
        if written != plan.written:
            plan = self._plan(plan.work, plan.outcomes, plan.failed, now, written)
        numbered = transaction.record_ledger(*plan.ledger)
        queued = {row.notification_id: row for row in transaction.enqueue(plan.rows, now_us, numbered)}
        results = [
            item if isinstance(item, Result) else self._result(item, written.settings, queued)
            for item in plan.outcomes
        ]
        self._fates.handled(_settled(results), now_us)
        return results

    def _result(self, item: _Decided, written: set[SettingKey], queued: dict[str, OutboxRow]) -> Result:
        decision, fields = item.decision, _fields(item.event)
        notification = decision.notification
        if notification is not None:
            row = queued.get(notification.notification_id)
            if row is None:  # another worker claimed this reminder a moment ago
                return Result(item.delivery, "renewal.duplicate_reminder", fields, event=item.event)
            fields.update(notification_id=row.notification_id, audience=notification.audience)
            message = self._writer.message(row)
            return Result(item.delivery, decision.outcome, fields, message, row.seq, item.event, notification)
        if decision.outcome in ("owner.changed", "owner.cleared") and isinstance(item.event, OwnerChanged):
            key = SettingKey(item.event.data.partner_id, item.event.data.client_id)
            if key not in written:  # the database holds a newer change, committed meanwhile
                return Result(item.delivery, "owner.stale_ignored", fields, event=item.event)
        return Result(item.delivery, decision.outcome, fields, event=item.event)

    def _failed(self, delivery: Delivery, failure: Failure, event: Event | None = None) -> Result:
        fields = {} if event is None else _fields(event)
        fields |= {"reason": failure.reason, "detail": failure.detail}
        if event is None:
            fields["routing_key"] = delivery.routing_key
        return Result(delivery, failure.outcome, fields, failure.outgoing, event=event, failure=failure)


def _settled(results: Sequence[Result]) -> Iterator[tuple[dict[str, Any], str | None]]:
    """The handled deliveries' headers and the notification each caused: the replays' fates
    (a failed one is retried or dead-lettered, and the drain learns its fate then)."""
    for result in results:
        if result.failure is None:
            yield result.delivery.headers, result.fields.get("notification_id")


def _handled(outcomes: list[Result | _Decided]) -> Iterator[Handled]:
    """Each event the batch decided, or failed to, with what became of it: for the ledger."""
    for item in outcomes:
        if isinstance(item, _Decided):
            yield item.delivery, item.event, item.decision
        elif item.event is not None and item.failure is not None:
            yield item.delivery, item.event, item.failure


def _fields(event: Event) -> dict[str, Any]:
    return {"event_id": event.id, "type": event.type, "client_id": event.data.client_id}


def _reminder(decision: Decision) -> ReminderKey | None:
    data = decision.notification
    return None if data is None else ReminderKey(data.client_id, data.renewal_date, data.days_until_renewal)


def _micros(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000)
