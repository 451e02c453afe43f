"""The worker's side of the outbox, across its sessions: which committed notifications it has
not yet seen confirmed, which confirmed rows to delete, and when to look for rows that other
workers left behind.

A worker republishes its own unconfirmed rows when it reconnects. Rows of a worker that died
are found by the sweep every worker runs: rows older than the grace period that nobody has
claimed, claimed for one grace period so that only one worker publishes them. A live
worker's fresh rows are younger than the grace period and never swept.
"""

import time
from collections.abc import Iterable

from worker.store import OutboxRow, SqlStore
from worker.store.ledger_writes import Confirmed


class Outbox:
    def __init__(self, store: SqlStore, *, grace_s: float, sweep_every_s: float) -> None:
        self._store = store
        self._grace_us = int(grace_s * 1_000_000)
        self._sweep_every = sweep_every_s
        self.next_sweep = 0.0  # sweep as soon as the first session starts
        self.unconfirmed: set[int] = set()
        self._published_us: dict[int, int] = {}  # when each unconfirmed row was sent, for the ledger
        self._to_delete: list[Confirmed] = []

    def sent(self, seqs: Iterable[int]) -> None:
        seqs = list(seqs)
        self.unconfirmed.update(seqs)
        self._published_us.update(dict.fromkeys(seqs, time.time_ns() // 1000))

    def set_aside(self, seqs: Iterable[int]) -> None:
        """These rows will never be published (the store keeps them aside): stop tracking them."""
        for seq in seqs:
            self.unconfirmed.discard(seq)
            self._published_us.pop(seq, None)

    def confirmed(self, seqs: Iterable[int]) -> None:
        """The broker confirmed these rows: delete them with the next transaction (which stamps
        the reminder ledger with when each was published and confirmed)."""
        now_us, published = time.time_ns() // 1000, self._published_us
        seqs = list(seqs)
        self.unconfirmed.difference_update(seqs)
        self._to_delete += [Confirmed(seq, published.pop(seq, None), now_us) for seq in seqs]

    def pending_deletions(self) -> bool:
        return bool(self._to_delete)

    def take_deletions(self) -> list[Confirmed]:
        """Confirmed rows for the transaction being written to delete; `give_back` them if it
        does not commit."""
        taken, self._to_delete = self._to_delete, []
        return taken

    def give_back(self, seqs: list[Confirmed]) -> None:
        self._to_delete = seqs + self._to_delete

    def leftovers(self) -> list[OutboxRow]:
        """This worker's rows that a lost connection left unconfirmed, to publish again."""
        return self._store.unsent(sorted(self.unconfirmed)) if self.unconfirmed else []

    def orphans(self, limit: int = 1000) -> list[OutboxRow]:
        """If a sweep is due: rows other workers (or this one, before a restart) left behind."""
        if time.monotonic() < self.next_sweep:
            return []
        self.next_sweep = time.monotonic() + self._sweep_every
        rows = self._store.claim_orphans(now_us=time.time_ns() // 1000, grace_us=self._grace_us, limit=limit)
        if len(rows) == limit:
            self.next_sweep = 0.0  # more are waiting: sweep again at the next chance
        return rows
