"""`python -m bench.erasure`: how long `renewals forget --email` takes over N dead letters (1 KiB
bodies) and M reminder-ledger rows, one of each naming the address, on SQLite and (with
--store-url) PostgreSQL: the preview, the erasure, and the part of it that holds the write lock.
No broker: the rows are inserted directly."""

import argparse
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from worker.dead_letters.model import NewLetter
from worker.dead_letters.records import DeadLetterRecords
from worker.erasure import forget, preview, subject_of, tombstones
from worker.erasure import rows as erasure_rows
from worker.settings import Settings
from worker.store import SqlStore, open_store

ADDRESS = "dora@client.example"


def seeded(url: str, letters: int, ledger: int) -> SqlStore:
    store = open_store(url)
    store.migrate()
    records = DeadLetterRecords(store)
    for start in range(0, letters, 1000):
        records.insert([_letter(i) for i in range(start, min(letters, start + 1000))])
    with store.writing():
        store.execute_many(
            "INSERT INTO reminder_ledger (event_id, partner_id, client_id, renewal_date, days_until_renewal,"
            " handled_at_us, outcome, to_address, detail)"
            " VALUES (?, 'p', ?, '2027-01-01', 30, 1, 'notified', ?, ?)",
            [(f"e{i}", f"c{i}", _address(i), json.dumps({"to": [_address(i)]})) for i in range(ledger)],
        )
    return store


def _address(i: int) -> str:
    return ADDRESS if i == 7 else f"p{i}@client.example"


def _letter(i: int) -> NewLetter:
    data = {"client_id": f"c{i}", "decision_maker": {"email": _address(i)}, "pad": "x" * 900}
    return NewLetter(
        body=json.dumps({"id": f"e{i}", "data": data}).encode(),
        properties={"message_id": f"m{i}"},
        headers={"x-error-reason": "invalid_payload"},
        reason="invalid_payload",
        detail="bad",
        failed_at=datetime.now(UTC),
        attempts=1,
        replays=0,
        event_id=f"e{i}",
        event_type="RenewalApproaching",
        message_id=f"m{i}",
        origin=None,
    )


def measure(store: SqlStore) -> dict[str, float]:
    subject, settings = subject_of(None, ADDRESS), Settings()
    started = time.perf_counter()
    with store.read_only():  # what `forget` does under the write lock, timed on its own
        list(erasure_rows.mentions(store, subject))
        tombstones.outbox(store, subject)
    locked = time.perf_counter() - started
    started = time.perf_counter()
    preview(store, settings, subject)
    previewed = time.perf_counter() - started
    started = time.perf_counter()
    forget(store, settings, subject, "bench")
    erased = time.perf_counter() - started
    return {"preview_s": round(previewed, 2), "forget_s": round(erased, 2), "write_lock_s": round(locked, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--letters", type=int, default=20_000)
    parser.add_argument("--ledger", type=int, default=200_000)
    parser.add_argument("--store-url", help="a PostgreSQL URL (an empty schema) to measure as well")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        urls = [
            f"sqlite:///{Path(folder) / 'erasure.db'}",
            *([options.store_url] if options.store_url else []),
        ]
        for url in urls:
            store = seeded(url, options.letters, options.ledger)
            figures = measure(store)
            store.close()
            print(f"{store.kind}: {options.letters} letters, {options.ledger} ledger rows: {figures}")


if __name__ == "__main__":
    main()
