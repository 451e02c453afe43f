"""`python -m bench --dead-letters N`: the dead-letter records at N letters, on SQLite and on
PostgreSQL: how long listing, filtering, searching, counting and grouping take, as the CLI and
the console ask for them. No broker: the letters are inserted directly, as the worker's drain
inserts them (spread over 30 days, three reasons, details that normalise into three groups
with values that differ per letter), then each query is timed as the median of a few runs."""

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support.letters import spread
from support.spare_postgres import spare_postgres
from worker.dead_letters.model import STATUSES, LetterFilter
from worker.dead_letters.records import DeadLetterRecords
from worker.store import open_store

RUNS = 5  # each query is run this often; the median is reported


def measure(count: int, folder: Path, store_url: str | None) -> dict[str, Any]:
    """Timings (ms) per backend; `store_url` a PostgreSQL URL to use instead of a throw-away server."""
    results = {"sqlite": _backend(f"sqlite:///{folder / 'dead-letters.db'}", count)}
    with _postgres(store_url) as url:
        results["postgresql"] = _backend(url, count)
    return {"letters": count, "runs": RUNS, "backends": results}


@contextmanager
def _postgres(store_url: str | None) -> Iterator[str]:
    if store_url is not None and store_url.startswith(("postgresql:", "postgres:")):
        yield store_url
        return
    with spare_postgres() as server:
        yield server.url


def _backend(url: str, count: int) -> dict[str, Any]:
    store = open_store(url)
    store.migrate()
    records = DeadLetterRecords(store)
    start = datetime.now(UTC) - timedelta(days=30)
    every = timedelta(days=30) / count
    began = time.perf_counter()
    letters = spread(count, start=start, every=every)
    for offset in range(0, count, 2000):
        records.insert(letters[offset : offset + 2000])
    insert_s = time.perf_counter() - began
    middle = records.page(LetterFilter(), limit=1, after=count // 2).letters[0].id
    group = records.groups()[0].fingerprint
    queries: dict[str, Callable[[], object]] = {
        "list first page (50)": lambda: records.page(limit=50),
        f"list page at row {count // 2:,} (keyset)": lambda: records.page(limit=50, after=middle),
        "list newest first": lambda: records.page(limit=50, newest_first=True),
        "filter by reason": lambda: records.page(
            LetterFilter(reasons=frozenset({"invalid_payload"})), limit=50
        ),
        "filter by type + since 7d": lambda: records.page(
            LetterFilter(types=frozenset({"OwnerChanged"}), since=datetime.now(UTC) - timedelta(days=7)),
            limit=50,
        ),
        "filter by event id": lambda: records.page(LetterFilter(event_ids=frozenset({"evt-012345"}))),
        "filter by group": lambda: records.page(LetterFilter(groups=frozenset({group})), limit=50),
        "text search (rare)": lambda: records.page(LetterFilter(text="c-54321'"), limit=50),
        "text search (common)": lambda: records.page(LetterFilter(text="keyerror"), limit=50),
        "count all": lambda: records.count(),
        "count by reason": lambda: records.count(LetterFilter(reasons=frozenset({"no_recipient"}))),
        "groups with 24 h trend": lambda: records.groups(),
        "groups, every status": lambda: records.groups(LetterFilter(statuses=frozenset(STATUSES))),
        "one letter in full": lambda: records.get(middle),
    }
    timings = {name: _median_ms(query) for name, query in queries.items()}
    store.close()
    return {"insert_s": round(insert_s, 1), "ms": timings}


def _median_ms(query: Callable[[], object]) -> float:
    query()  # warm: the first run reads pages into the cache
    runs = []
    for _ in range(RUNS):
        began = time.perf_counter()
        query()
        runs.append((time.perf_counter() - began) * 1000)
    return round(statistics.median(runs), 1)


def table(result: dict[str, Any]) -> str:
    backends = result["backends"]
    names = list(next(iter(backends.values()))["ms"])
    width = max(len(name) for name in names)
    lines = [
        f"dead-letter records at {result['letters']:,} letters: median of {result['runs']} runs, ms",
        "",
        f"{'query':{width}}  " + "  ".join(f"{backend:>10}" for backend in backends),
    ]
    lines += [
        f"{name:{width}}  " + "  ".join(f"{backends[backend]['ms'][name]:>10.1f}" for backend in backends)
        for name in names
    ]
    lines.append(
        f"{'(inserting them, s)':{width}}  "
        + "  ".join(f"{backends[backend]['insert_s']:>10.1f}" for backend in backends)
    )
    slowest = max(ms for backend in backends.values() for ms in backend["ms"].values())
    lines += ["", f"slowest: {slowest:.1f} ms ({'under' if slowest < 1000 else 'OVER'} a second)"]
    return "\n".join(lines)
