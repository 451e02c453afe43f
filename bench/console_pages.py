"""How fast the console's pages and API answer over many dead letters (keyset pages, search,
filters, groups): `python -m bench.console_pages [--letters 100000] [--store-url URL]`.

A measurement, not a test: it prints the median of a few requests per page, through the
console's own app (in process, no network), over letters put straight into the store.
"""

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from support.console import VIEWER, basic, in_process, sign_in
from support.letters import T0, new_letter
from worker.dead_letters.model import NewLetter

REPEATS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--letters", type=int, default=100_000)
    parser.add_argument("--store-url", help="a PostgreSQL URL (default: a SQLite file)")
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        client, records = in_process(Path(folder), [], store_url=arguments.store_url)
        for start in range(0, arguments.letters, 5000):
            records.insert(_letters(start, min(5000, arguments.letters - start)))
        print(f"{records.count()} letters stored in {time.perf_counter() - started:.1f} s")
        sign_in(client, VIEWER)
        auth = basic(VIEWER)
        deep = client.get("/api/dead-letters", params={"limit": 50, "order": "oldest"}, headers=auth)
        middle = deep.json()["letters"][0]["id"] + arguments.letters // 2
        pages = {
            "groups page": ("/", {}),
            "letters page, newest": ("/letters", {}),
            "letters page, halfway (keyset)": ("/letters", {"after": str(middle)}),
            "letters page, search by id": ("/letters", {"text": f"evt-{arguments.letters // 2:06d}"}),
            "letters page, one reason": ("/letters", {"reason": "invalid_payload"}),
            "letters page, failed before": ("/letters", {"until": "2026-11-20T12:00"}),
            "API letters, limit 500": ("/api/dead-letters", {"limit": "500"}),
            "API groups": ("/api/groups", {}),
        }
        for name, (path, params) in pages.items():
            timings = []
            for _ in range(REPEATS):
                begun = time.perf_counter()
                response = client.get(path, params=params, headers=auth if path.startswith("/api/") else {})
                timings.append(time.perf_counter() - begun)
                assert response.status_code == 200, (path, response.status_code)
            rows = response.text.count('class="letter"') if path == "/letters" else None
            shown = "" if rows is None else f", {rows} rows"
            print(f"{name:34} {statistics.median(timings) * 1000:8.1f} ms (median of {REPEATS}{shown})")


KINDS = [
    ("no_recipient", "RenewalApproaching", "owner is 'platform', no decision maker for client 'c-{n}'"),
    ("invalid_payload", "OwnerChanged", "data.owner: Input should be 'platform' or 'partner' (got {n})"),
    ("retries_exhausted", "RenewalApproaching", "bug: KeyError: 'c-{n}' at handlers/rules.py:{n}"),
]


def _letters(first: int, count: int) -> list[NewLetter]:
    """Letters of three kinds, one a second from T0, each with its own event id."""
    letters = []
    for number in range(first, first + count):
        reason, event_type, detail = KINDS[number % len(KINDS)]
        letters.append(
            new_letter(
                event_id=f"evt-{number:06d}",
                event_type=event_type,
                reason=reason,
                detail=detail.format(n=number),
                failed_at=T0 + timedelta(seconds=number),
            )
        )
    return letters


if __name__ == "__main__":
    main()
