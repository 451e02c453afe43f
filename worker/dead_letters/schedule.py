"""Replays that wait for a time: `renewals dlq replay --at WHEN`, the console's replay form and
its API record the operation `scheduled` with a `not_before`; the workers run it when it is due.

Who runs it: the worker, which is always running. Its housekeeping looks every few seconds
(`scheduled_runs.ScheduledReplays.look`: one store call, no broker) and, when one is due and
none is running in this process, starts a thread with its own store and broker connections. That thread claims
the operation (`Schedule.claim_due`: status running, and a runner's name with a lease, taken
`FOR UPDATE SKIP LOCKED` on PostgreSQL and under SQLite's write lock, so one of several workers
takes it) and runs it through the same throttled, cancellable replay as the CLI and the console.
The runner renews its lease after each letter; a runner that died (its worker killed or
restarted) leaves the operation running with a lease that runs out, and the next look of any
worker takes it up where it stopped. A scheduled operation is cancelled at once (nothing was
sent); its selection is frozen when it is scheduled, as any replay's is when it starts.
"""

from datetime import datetime

from worker.dead_letters.model import ReplayOperation
from worker.dead_letters.sql import OPERATION_READ, now_us, operation, to_us
from worker.dead_letters.trail import Trail
from worker.store.sql import SqlStore

RUNNER_LEASE = 30.0  # seconds a runner's claim holds at least; renewed after every letter


class Schedule:
    """The scheduled replays of one store: found when due, claimed by one runner, cancelled."""

    def __init__(self, store: SqlStore, trail: Trail) -> None:
        self._store = store
        self._backend = store._backend
        self._trail = trail

    def any_due(self, *, now: datetime | None = None) -> bool:
        """A scheduled replay is due, or a runner's lease on a running one ran out."""
        at_us = now_us() if now is None else to_us(now)
        row = self._store.execute(
            f"SELECT 1 FROM dead_letter_replays WHERE {_DUE} LIMIT 1", (at_us, at_us)
        ).fetchone()
        return row is not None

    def claim_due(self, runner: str, *, lease: float = RUNNER_LEASE) -> ReplayOperation | None:
        """The earliest due operation, now running under `runner` until `lease` seconds from
        now (or sooner renewed); None when none is due or other runners hold them all."""
        at_us = now_us()
        with self._store.transaction():
            row = self._store.execute(
                f"SELECT id, rate FROM dead_letter_replays WHERE {_DUE}"
                f" ORDER BY not_before_us, id LIMIT 1{self._backend.skip_locked}",
                (at_us, at_us),
            ).fetchone()
            if row is None:
                return None
            until_us = at_us + int(runner_lease(row[1], lease) * 1_000_000)
            self._store.execute(
                "UPDATE dead_letter_replays SET status = 'running', runner = ?, runner_until_us = ?,"
                " updated_at_us = ? WHERE id = ?",
                (runner, until_us, at_us, row[0]),
            )
            found = self._operation(row[0])
            self._trail.audit_row(
                "run_scheduled",
                runner,
                found.id,
                found.selection.describe(),
                {"done": found.done, "total": found.total},
                "started" if found.done == 0 else "taken up",
            )
        return found

    def renew(self, operation_id: str, runner: str, *, lease: float) -> bool:
        """Hold the operation `lease` seconds more; False if another runner took it over."""
        with self._store.transaction():
            changed = self._store.execute(
                "UPDATE dead_letter_replays SET runner_until_us = ? WHERE id = ? AND runner = ?"
                " AND status = 'running' RETURNING id",
                (now_us() + int(lease * 1_000_000), operation_id, runner),
            ).fetchall()
        return bool(changed)

    def cancel(self, operation_id: str, *, actor: str) -> ReplayOperation | None:
        """End a scheduled operation before it starts (cancelled, nothing sent); audited. None
        if it is not (or no longer) waiting."""
        with self._store.transaction():
            changed = self._store.execute(
                "UPDATE dead_letter_replays SET status = 'cancelled', cancel_requested = 1,"
                " updated_at_us = ? WHERE id = ? AND status = 'scheduled' RETURNING id",
                (now_us(), operation_id),
            ).fetchall()
            if not changed:
                return None
            found = self._operation(operation_id)
            self._trail.audit_row(
                "cancel",
                actor,
                operation_id,
                found.selection.describe(),
                {"done": 0, "total": found.total},
                "cancelled while scheduled",
            )
        return found

    def _operation(self, operation_id: str) -> ReplayOperation:
        row = self._store.execute(
            f"SELECT {OPERATION_READ} FROM dead_letter_replays WHERE id = ?", (operation_id,)
        ).fetchone()
        return operation(row)


_DUE = (
    "((status = 'scheduled' AND not_before_us <= ? AND cancel_requested = 0)"
    " OR (status = 'running' AND runner IS NOT NULL AND runner_until_us < ?))"
)


def runner_lease(rate: float | None, lease: float = RUNNER_LEASE) -> float:
    """How long a runner's claim holds: `lease`, or three letters' time at a slow rate."""
    return lease if not rate else max(lease, 3.0 / rate)
