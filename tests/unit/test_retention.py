"""When pruning rounds run: often enough to keep up with a fast worker, rarely when there is little to do."""

from datetime import date
from types import SimpleNamespace

import pytest

from worker.service import retention as retention_module
from worker.service.retention import Retention
from worker.settings import Settings


class CountingStore:
    """Answers each pruning round with the next of the given deletion counts."""

    def __init__(self, deletions: list[int]) -> None:
        self.deletions = deletions
        self.rounds = 0

    def prune(
        self,
        *,
        processed_before_us: int,
        renewals_before: date,
        limit: int,
        ledger_before_us: int | None = None,
    ) -> int:
        self.rounds += 1
        return self.deletions.pop(0)


def test_while_rounds_find_full_chunks_the_next_is_due_at_once_then_the_interval_applies(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A round that deleted a full chunk is behind: the next runs at the next pause between batches, until one finds less."""
    clock = SimpleNamespace(now=100.0)
    monkeypatch.setattr(retention_module, "time", SimpleNamespace(monotonic=lambda: clock.now))
    store = CountingStore([1000, 1500, 10, 0])
    retention = Retention(store, Settings(prune_interval=60), chunk=1000)  # type: ignore[arg-type]
    clock.now += 4.9
    assert retention.prune_if_due() == 0 and store.rounds == 0  # the first round 5 s after start
    clock.now += 0.1
    assert retention.prune_if_due() == 1000
    assert retention.prune_if_due() == 1500
    assert retention.prune_if_due() == 10
    clock.now += 59
    assert retention.prune_if_due() == 0 and store.rounds == 3  # caught up: not due for the interval
    clock.now += 1
    assert retention.prune_if_due() == 0 and store.rounds == 4  # the round after the interval
