"""Erasure, written once for `renewals forget`, the console's form and `POST /api/forget`.

`preview` reads what an erasure of the subject would change, table by table, and changes
nothing. `forget` does it in one transaction: it finds the same rows again, refuses while a
notification that names the subject waits in the outbox (`NotificationsPending`), applies every
edit and writes one row in `erasures`: the counts, the operation id, the actor and the SHA-256
of the subject, never the subject itself. Both say what the store cannot reach (`beyond`).
"""

import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from worker.erasure import rows, tombstones
from worker.erasure.subject import Subject
from worker.settings import Settings
from worker.store.sql import SqlStore
from worker.tools.errors import ToolError


class NotificationsPending(ToolError):
    """Notifications that name the subject wait in the outbox: erasing now would drop them."""

    def __init__(self, count: int) -> None:
        super().__init__(
            f"{count} notification{' naming them still waits' if count == 1 else 's naming them still wait'}"
            " in the outbox"
            " to be published: start a worker (it publishes them within seconds), then run the erasure again"
        )
        self.count = count


@dataclass(frozen=True)
class Earlier:
    """An erasure of the same subject already done."""

    operation_id: str
    at: datetime
    actor: str


@dataclass(frozen=True)
class ErasureReport:
    """What an erasure would change (a preview: `operation_id` None) or changed, per table and
    action; `pending` notifications in the outbox; what the store cannot reach."""

    subject: Subject
    counts: dict[str, dict[str, int]]
    pending: int
    beyond: list[str]
    earlier: list[Earlier] = field(default_factory=list)
    operation_id: str | None = None

    @property
    def total(self) -> int:
        return sum(sum(actions.values()) for actions in self.counts.values())

    def as_dict(self) -> dict[str, object]:
        return {
            "erased": self.operation_id is not None,
            "operation_id": self.operation_id,
            "subject_kind": self.subject.kind,
            "subject_sha256": self.subject.sha256,
            "pseudonym": self.subject.pseudonym,
            "tables": self.counts,
            "pending_notifications": self.pending,
            "cannot_reach": self.beyond,
            "erased_before": [
                {"operation_id": e.operation_id, "at": e.at.isoformat(), "actor": e.actor}
                for e in self.earlier
            ],
        }


def beyond(settings: Settings) -> list[str]:
    """What holds the subject's data outside the store, which no erasure here can reach."""
    retry = f"{settings.queue}.retry.*"
    return [
        f"messages still in the queues: {settings.queue} (and its retry queues {retry}),"
        f" the dead-letter queue {settings.dead_letter_queue} until drained, {settings.unrouted_queue}",
        f"notifications already published to {settings.notifications_exchange} and its consumers' copies",
        "exports written by `renewals dlq export` or the console, and files made from them",
        "backups and replicas of the store, and the broker's own",
        "logs (the worker logs ids, never addresses; a debug or tracing backend may hold more)",
    ]


def preview(store: SqlStore, settings: Settings, subject: Subject) -> ErasureReport:
    """What `forget` would change now, changing nothing."""
    with store.read_only():
        letters, _ = tombstones.letters_naming(store, subject)
        edits, pending = _edits(store, subject, letters, operation_id="", actor="", at_us=0)
        earlier = _earlier(store, subject)
    return ErasureReport(subject, _counts(edits), pending, beyond(settings), earlier)


def forget(store: SqlStore, settings: Settings, subject: Subject, actor: str) -> ErasureReport:
    """Erase the subject's data in one transaction, with its audit row (NotificationsPending:
    nothing changed). The dead letters are searched first without the write lock, so the
    worker's batches wait only for the letters that name the subject and any that arrived since."""
    operation_id = uuid.uuid4().hex[:12]
    at_us = time.time_ns() // 1000
    unreachable = beyond(settings)
    with store.read_only():
        letters, last = tombstones.letters_naming(store, subject)
    with store.writing():
        letters += tombstones.letters_naming(store, subject, after=last)[0]
        earlier = _earlier(store, subject)
        edits, pending = _edits(store, subject, letters, operation_id=operation_id, actor=actor, at_us=at_us)
        if pending:
            raise NotificationsPending(pending)
        for edit in edits:
            store.execute(edit.statement, edit.params)
        counts = _counts(edits)
        store.execute(
            "INSERT INTO erasures (operation_id, at_us, actor, subject_kind, subject_sha256, partner_id,"
            " counts, unreachable) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                operation_id,
                at_us,
                actor,
                subject.kind,
                subject.sha256,
                subject.partner,
                json.dumps(counts, sort_keys=True),
                json.dumps(unreachable),
            ),
        )
    return ErasureReport(subject, counts, 0, unreachable, earlier, operation_id)


def _edits(
    store: SqlStore, subject: Subject, letters: list[int], *, operation_id: str, actor: str, at_us: int
) -> tuple[list[rows.Edit], int]:
    outbox, pending = tombstones.outbox(store, subject)
    contacts = rows.contacts_of(store, subject)
    found = [
        *rows.client_rows(store, subject),
        *rows.mentions(store, subject, contacts),
        *outbox,
        *tombstones.dead_letters(
            store, subject, contacts, letters, operation_id=operation_id, actor=actor, at_us=at_us
        ),
        *tombstones.edit_records(store, subject, contacts, letters),
    ]
    return found, pending


def _counts(edits: list[rows.Edit]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for edit in edits:
        if edit.rows:
            counts[edit.table][edit.action] = counts[edit.table].get(edit.action, 0) + edit.rows
    return dict(counts)


def _earlier(store: SqlStore, subject: Subject) -> list[Earlier]:
    found = store.execute(
        "SELECT operation_id, at_us, actor FROM erasures WHERE subject_sha256 = ? ORDER BY at_us",
        (subject.sha256,),
    ).fetchall()
    return [Earlier(op, datetime.fromtimestamp(at_us / 1e6, UTC), actor) for op, at_us, actor in found]
