"""The console's Reminders page, the owner history on the Owners page, and their JSON under /api/,
over real stores, SQLite and PostgreSQL: a viewer reads them, the search and paging are the
CLI's, and nothing a row carries becomes markup."""

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from support.console import VIEWER, basic, in_process, sign_in
from support.ledger_rows import AT_US, MINUTE_US, change, reminder, write
from worker.store import open_store


@pytest.fixture
def console(tmp_path: Path, store_url: str) -> TestClient:
    """The console over a store holding 60 reminders of globex, 1 of initech, and acme's owner history."""
    client, _ = in_process(tmp_path, [], store_url=store_url)
    store = open_store(store_url)
    rows = [reminder(event_id=f"g-{n:02}", handled_at_us=AT_US + n * MINUTE_US) for n in range(60)]
    rows.append(
        reminder(
            event_id="i-<b>1</b>",
            client_id="initech",
            to_address="ivan@initech.example",
            cc_address=None,
            rule_row=2,
            handled_at_us=AT_US + 90 * MINUTE_US,
        )
    )
    write(store, "reminder_ledger", rows)
    write(
        store,
        "owner_history",
        [
            change(event_id="e-17"),
            change(event_id="e-16", changed_at_us=AT_US - MINUTE_US, won=0, lost_to_event_id="e-17"),
            change(
                event_id="e-9", client_id="globex", owner_after="partner", changed_at_us=AT_US + MINUTE_US
            ),
        ],
    )
    store.close()
    return client


def test_a_viewer_reads_the_reminders_api_newest_first_a_page_at_a_time(console: TestClient) -> None:
    """/api/reminders pages by next_before through every reminder once, newest first; without sign-in it is 401."""
    assert console.get("/api/reminders").status_code == 401
    auth = basic(VIEWER)
    seen: list[str] = []
    before: dict[str, int] = {}
    while True:
        page = console.get("/api/reminders", params={"limit": 25, **before}, headers=auth).json()
        seen += [row["event_id"] for row in page["reminders"]]
        if page["next_before"] is None:
            break
        before = {"before": page["next_before"]}
    assert seen == ["i-<b>1</b>", *[f"g-{n:02}" for n in reversed(range(60))]]


def test_the_api_filters_by_partner_client_recipient_and_time(console: TestClient) -> None:
    """client, partner, recipient (to or cc) and since/until narrow /api/reminders as the CLI's options do."""
    auth = basic(VIEWER)

    def events(**params: str) -> list[str]:
        response = console.get("/api/reminders", params={"limit": 500, **params}, headers=auth)
        assert response.status_code == 200, response.text
        return [row["event_id"] for row in response.json()["reminders"]]

    assert events(client="initech") == ["i-<b>1</b>"]
    assert events(recipient="ivan@initech.example") == ["i-<b>1</b>"]
    assert len(events(recipient="alice@acme.example", partner="acme")) == 60
    assert events(client="globex", since="2026-10-01T09:58", until="2026-10-01T10:00:00Z") == ["g-59", "g-58"]
    assert events(partner="umbrella") == []
    bad = console.get("/api/reminders", params={"since": "yesterday"}, headers=auth)
    assert bad.status_code == 422 and "since" in bad.text


def test_the_reminders_page_searches_and_pages_with_decisions_in_words(console: TestClient) -> None:
    """The page (nav entry, viewer) shows 50 rows newest first with a next page, each decision in words, ids as text."""
    sign_in(console, VIEWER)
    first = console.get("/reminders")
    assert first.status_code == 200
    assert '<a href="/reminders" aria-current="page">Reminders</a>' in first.text
    assert first.text.count('class="reminder ') == 50 and 'id="next-page"' in first.text
    assert "i-&lt;b&gt;1&lt;/b&gt;" in first.text and "<b>1</b>" not in first.text
    assert "system default" not in first.text
    assert (
        "platform default of acme since 2026-09-01 09:00 UTC (event e-17): to the decision maker dora@globex.example"
        in first.text
    )
    searched = console.get("/reminders", params={"client": "globex", "since": "2026-10-01T09:55"}).text
    assert searched.count('class="reminder ') == 5 and 'id="next-page"' not in searched
    assert 'value="2026-10-01T09:55"' in searched
    nothing = console.get("/reminders", params={"recipient": "nobody@example.invalid"}).text
    assert 'id="no-reminders"' in nothing


def test_the_owners_page_and_api_show_the_history_won_and_lost(console: TestClient) -> None:
    """For a client: its override and the partner-wide changes, the late one marked lost to the event that beat it."""
    auth = basic(VIEWER)
    assert console.get("/api/owners/acme/history").status_code == 401
    found = console.get("/api/owners/acme/history", params={"client": "globex"}, headers=auth).json()
    assert [(c["event_id"], c["outcome"]) for c in found["changes"]] == [
        ("e-9", "won"),
        ("e-17", "won"),
        ("e-16", "lost to event e-17"),
    ]
    sign_in(console, VIEWER)
    page = console.get("/owners", params={"partner": "acme", "client": "globex"}).text
    assert page.count('class="owner-change won"') == 2 and page.count('class="owner-change lost"') == 1
    assert "lost to event e-17" in page and "(none) → partner with contact alice@acme.example" in page
    other = console.get("/owners", params={"partner": "umbrella"}).text
    assert 'id="no-history"' in other
