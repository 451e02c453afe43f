"""Every operator action on dead letters, written once for `renewals dlq` and the console alike.

Each takes the actor (a login name, a console user) and writes one audit row under an
operation id, which it returns: archive, purge, note, export, starting, resuming and cancelling
a replay (a replay's own row is written when it ends, under the same id), and edit and retry
(checked by `draft_edit`, sent by `edit`). `audit` reads them
back, newest first. The adapters add what is theirs: options and forms, output, a log line.
"""

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from worker.dead_letters import editing
from worker.dead_letters.editing import Draft, Edited
from worker.dead_letters.guardrails import EditPolicy
from worker.dead_letters.model import AuditEntry, LetterFilter, ReplayOperation
from worker.dead_letters.records import DeadLetterRecords
from worker.dead_letters.replays import InvalidCanary, Republisher, check_rate
from worker.dead_letters.sql import to_us


@dataclass(frozen=True)
class Done:
    """What an action did: its operation id, the selection as the audit names it, the counts."""

    operation_id: str
    selection: str
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"operation_id": self.operation_id, "selection": self.selection, **self.counts}


def operation_id() -> str:
    """A new operation id: twelve hex digits, as replays have."""
    return uuid.uuid4().hex[:12]


def note(records: DeadLetterRecords, actor: str, letter_ids: Sequence[int], text: str) -> Done:
    """A triage note on each letter; KeyError if one does not exist (then none is noted)."""
    done = operation_id()
    records.add_note(letter_ids, text, actor=actor, operation_id=done)
    return Done(done, ", ".join(f"#{letter_id}" for letter_id in letter_ids), {"noted": len(letter_ids)})


def archive(records: DeadLetterRecords, actor: str, selection: LetterFilter) -> Done:
    """Mark the selected unresolved letters archived."""
    done = operation_id()
    count = records.archive(selection, actor=actor, operation_id=done)
    return Done(done, selection.describe(), {"archived": count})


def purge(
    records: DeadLetterRecords, actor: str, selection: LetterFilter, *, shown: Sequence[int] | None = None
) -> Done:
    """Purge the letters an operator was shown (`shown`: a preview's ids; never a letter that
    arrived after the preview), or, without a preview (the console's confirmation), those the
    selection takes now, in one statement that reads no body."""
    done = operation_id()
    if shown is None:
        count = records.purge(selection, actor=actor, operation_id=done)
    else:
        described = selection.describe()
        count = records.purge_shown(
            shown, statuses=selection.statuses, actor=actor, operation_id=done, described=described
        )
    return Done(done, selection.describe(), {"purged": count})


def exported(records: DeadLetterRecords, actor: str, selection: LetterFilter, count: int, to: str) -> Done:
    """Record an export of `count` letters to `to` (the export changed nothing)."""
    done = operation_id()
    records.audit(
        "export",
        actor=actor,
        selection=selection.describe(),
        counts={"exported": count},
        result=to,
        operation_id=done,
    )
    return Done(done, selection.describe(), {"exported": count})


def start_replay(
    records: DeadLetterRecords,
    actor: str,
    selection: LetterFilter,
    *,
    rate: float | None,
    to_original: bool,
    force: bool,
    max_replays: int,
    at: datetime | None = None,
    canary: int = 0,
) -> ReplayOperation:
    """A new replay operation over the selected new letters, running; whoever runs it (the
    command in the foreground, the console in a thread) writes its audit row when it ends.
    With `at`, it is scheduled instead (audited now): the workers run it then
    (worker/dead_letters/schedule.py). With a `canary` of N, N letters go first and the rest
    only if they resolved."""
    if canary < 0:
        raise InvalidCanary(f"a replay's canary is a number of letters, 1 or more, not {canary}")
    operation = records.start_replay(
        selection,
        actor=actor,
        rate=check_rate(rate),
        to_original=to_original,
        force=force,
        max_replays=max_replays,
        not_before_us=None if at is None else to_us(at),
        canary=canary,
    )
    if at is not None:
        records.audit(
            "schedule",
            actor=actor,
            selection=operation.selection.describe(),
            counts={"total": operation.total},
            result=f"scheduled for {at.isoformat(timespec='seconds')}",
            operation_id=operation.id,
        )
    return operation


def resume_replay(records: DeadLetterRecords, actor: str, replay_id: str) -> ReplayOperation:
    """Take up a cancelled or interrupted replay (UnknownOperation, OperationBusy; InvalidRate
    if its stored rate cannot be held: then it stays as it is); a finished one comes back as is."""
    check_rate(records.operation(replay_id).rate)
    resumed = records.resume(replay_id, actor=actor)
    if resumed.status == "running":
        counts = {"done": resumed.done, "total": resumed.total}
        selection = resumed.selection.describe()
        records.audit(
            "resume",
            actor=actor,
            selection=selection,
            counts=counts,
            result="resumed",
            operation_id=replay_id,
        )
    return resumed


def cancel_replay(records: DeadLetterRecords, actor: str, replay_id: str) -> ReplayOperation:
    """Ask a running replay to stop, from any process (UnknownOperation); a scheduled one ends
    cancelled at once, before anything is sent. Audited."""
    cancelled = records.cancel_scheduled(replay_id, actor=actor)
    return cancelled if cancelled is not None else records.request_cancel(replay_id, actor=actor)


def audit(records: DeadLetterRecords, *, limit: int = 100, of: str | None = None) -> list[AuditEntry]:
    """The latest audit rows, newest first, whoever acted and from where (`of`: one operation)."""
    return records.audit_log(limit=limit, operation_id=of)


def draft_edit(
    records: DeadLetterRecords,
    policy: EditPolicy,
    letter_id: int,
    body: bytes,
    header_changes: Mapping[str, str | None] | None = None,
) -> Draft:
    """An edit of one letter checked, nothing changed (EditRefused saying why not): see
    `worker.dead_letters.editing`."""
    return editing.draft(records, policy, letter_id, body, header_changes)


def edit(records: DeadLetterRecords, actor: str, draft: Draft, publisher: Republisher) -> Edited:
    """Send a checked edit's copy; the original becomes replayed only once the broker confirms
    it. Audited either way, with the before and after when it was sent."""
    return editing.publish(records, draft, publisher, actor=actor)
