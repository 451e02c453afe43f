"""The console's lists for daily use, over both stores: totals ("51-100 of 120"), several
statuses at once, a letter's previous and next in the list's order, a history that starts with
"received", the 24-hour trend as an inline SVG with a value per hour, one order (newest first)
in every list, and error pages titled by what happened."""

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from starlette.testclient import TestClient

from support.console import OPERATOR, VIEWER, basic, in_process, sign_in
from support.letters import new_letter, spread
from worker.dead_letters.model import LetterFilter
from worker.dead_letters.records import DeadLetterRecords


def ids_on(page: str) -> list[int]:
    """The letter numbers of a letters page, in the order shown."""
    return [int(n) for n in re.findall(r'<td class="num"><a href="/letters/(\d+)', page)]


def three_archived(client: TestClient, records: DeadLetterRecords) -> list[int]:
    """Archive the three oldest letters through the API; their ids."""
    oldest = [s.id for s in records.page(limit=3).letters]
    answer = client.post("/api/archive", json={"letter": oldest}, headers=basic(OPERATOR))
    assert answer.status_code == 200, answer.text
    return oldest


def test_lists_show_their_totals_on_every_page(store_url: str, tmp_path: Path) -> None:
    """120 letters: the first page says 1-50 of 120, the second 51-100 of 120, the API the total."""
    client, _ = in_process(tmp_path, spread(120), store_url=store_url)
    sign_in(client, VIEWER)
    first = client.get("/letters").text
    assert '<p class="totals" id="totals">1\u201350 of 120 ' in first
    after = re.search(r'id="next-page" href="/letters\?[^"]*after=(\d+)', first)
    assert after is not None
    second = client.get("/letters", params={"after": after.group(1)}).text
    assert '<p class="totals" id="totals">51\u2013100 of 120 ' in second
    assert ids_on(second)[0] == ids_on(first)[-1] - 1
    assert client.get("/api/dead-letters", params={"limit": 10}).json()["total"] == 120
    groups = client.get("/").text
    assert "3 groups, 120 unresolved letters" in groups


def test_the_lists_refresh_themselves_unless_the_user_is_at_them(store_url: str, tmp_path: Path) -> None:
    """The groups, letters and audit lists poll their own URL (filters kept), and the script that
    holds them still while letters are ticked is served with every page."""
    client, _ = in_process(tmp_path, spread(3), store_url=store_url)
    sign_in(client, OPERATOR)
    for path, target in (
        ("/", "/"),
        ("/letters?reason=no_recipient", "/letters?status=new&amp;reason=no_recipient"),
        ("/audit", "/audit"),
    ):
        page = client.get(path).text
        assert re.search(
            rf'hx-get="{re.escape(target)}" hx-trigger="every 15s" hx-select="#[a-z]+-list" hx-swap="outerHTML" data-refresh',
            page,
        ), path
        assert '<script src="/static/console.js"></script>' in page
    script = client.get("/static/console.js").text
    assert 'hasAttribute("data-refresh")' in script and "input:checked" in script
    assert "preventDefault" in script and "shouldSwap = false" in script  # not sent; not swapped in


def test_the_status_filter_takes_several_values_in_the_page_and_the_api(
    store_url: str, tmp_path: Path
) -> None:
    """?status=new&status=archived lists both, its boxes ticked; each alone lists its own."""
    client, records = in_process(tmp_path, spread(10), store_url=store_url)
    archived = three_archived(client, records)
    api = client.get(
        "/api/dead-letters", params=[("status", "new"), ("status", "archived")], headers=basic(VIEWER)
    )
    assert api.json()["total"] == 10 and {row["status"] for row in api.json()["letters"]} == {
        "new",
        "archived",
    }
    only = client.get("/api/dead-letters", params={"status": "archived"}, headers=basic(VIEWER)).json()
    assert sorted(row["id"] for row in only["letters"]) == sorted(archived)
    sign_in(client, VIEWER)
    page = client.get("/letters?status=new&status=archived").text
    assert len(ids_on(page)) == 10
    assert 'id="status-new" checked' in page and 'id="status-archived" checked' in page
    assert 'id="status-purged" >' in page  # unticked
    assert "1\u201310 of 10" in page


def test_a_letter_has_previous_and_next_in_the_lists_order(store_url: str, tmp_path: Path) -> None:
    """Newest first, filtered by reason: previous is the next newer letter of that reason, next the next older;
    the list's filters follow the links, and the ends say so."""
    client, _ = in_process(tmp_path, spread(9), store_url=store_url)
    sign_in(client, VIEWER)
    shown = ids_on(client.get("/letters?reason=no_recipient").text)
    assert len(shown) == 3 and shown == sorted(shown, reverse=True)
    middle = client.get(f"/letters/{shown[1]}?status=new&reason=no_recipient").text
    assert f'id="previous-letter" href="/letters/{shown[0]}?status=new&amp;reason=no_recipient"' in middle
    assert f'id="next-letter" href="/letters/{shown[2]}?status=new&amp;reason=no_recipient"' in middle
    newest = client.get(f"/letters/{shown[0]}?status=new&reason=no_recipient").text
    assert 'id="previous-letter"' not in newest and "newest of the list" in newest
    oldest = client.get(f"/letters/{shown[2]}?status=new&reason=no_recipient").text
    assert 'id="next-letter"' not in oldest and "oldest of the list" in oldest
    assert (
        f'href="/letters/{shown[0]}?status=new&amp;reason=no_recipient"'
        in client.get("/letters?reason=no_recipient").text
    )


def test_a_new_letters_history_starts_with_received(store_url: str, tmp_path: Path) -> None:
    """A letter nothing was done to yet: one history row, received, at its arrival; a note comes after it."""
    at = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    client, records = in_process(tmp_path, [], store_url=store_url)
    records.insert([new_letter()], at=at)
    [summary] = records.page().letters
    sign_in(client, OPERATOR)
    page = client.get(f"/letters/{summary.id}").text
    rows = re.findall(r'<tr class="history-(\w+)"><td>([^<]*)</td>', page)
    assert rows == [("received", "2026-12-01 08:30:00Z")]
    api = client.get(f"/api/dead-letters/{summary.id}", headers=basic(VIEWER)).json()["history"]
    assert [(h["kind"], h["at"]) for h in api] == [("received", at.isoformat())]
    client.post(
        f"/api/dead-letters/{summary.id}/notes", json={"text": "asked billing"}, headers=basic(OPERATOR)
    )
    api = client.get(f"/api/dead-letters/{summary.id}", headers=basic(VIEWER)).json()["history"]
    assert [h["kind"] for h in api] == ["received", "note"]


def test_the_trend_is_an_inline_svg_with_an_axis_and_a_value_per_hour(store_url: str, tmp_path: Path) -> None:
    """Letters 3 h and 1 h ago and now: 24 bars, each with its hour and count in a <title>, the busiest one full height, an axis."""
    client, records = in_process(tmp_path, [], store_url=store_url)
    now = datetime.now(UTC)
    for hours_ago, count in ((3, 2), (1, 4), (0, 1)):
        at = now - timedelta(hours=hours_ago)
        records.insert([new_letter(failed_at=at) for _ in range(count)], at=at)
    sign_in(client, VIEWER)
    page = client.get("/").text
    [chart] = re.findall(r'<svg class="trend-chart".*?</svg>', page, re.S)
    titles = re.findall(r'<g class="hour"><title>(\d\d:\d\d)-(\d\d:\d\d) UTC: (\d+) letters?</title>', chart)
    assert len(titles) == 24
    assert [int(n) for *_, n in titles][-4:] == [2, 0, 4, 1]
    hour = now.replace(minute=0, second=0, microsecond=0)
    assert titles[-1][:2] == (f"{hour:%H:%M}", f"{hour + timedelta(hours=1):%H:%M}")
    assert (
        '<line class="axis"' in chart
        and ">now</text>" in chart
        and 'y="9" text-anchor="end">4</text>' in chart
    )
    heights = [
        int(h) for h in re.findall(r'<rect class="bar" x="\d+" y="\d+" width="8" height="(\d+)"', chart)
    ]
    assert heights == [20, 40, 10]  # 2, 4 and 1 letters, scaled to the busiest hour
    assert "▁" not in page and "█" not in page  # no text sparkline left


def test_every_list_is_newest_first(store_url: str, tmp_path: Path) -> None:
    """Letters (page and API), the audit and the replays list the newest first."""
    client, records = in_process(tmp_path, spread(6), store_url=store_url)
    sign_in(client, OPERATOR)
    shown = ids_on(client.get("/letters").text)
    assert shown == sorted(shown, reverse=True) and len(shown) == 6
    api = [row["id"] for row in client.get("/api/dead-letters", headers=basic(VIEWER)).json()["letters"]]
    assert api == shown
    for text in ("first", "second"):
        client.post(f"/api/dead-letters/{shown[0]}/notes", json={"text": text}, headers=basic(OPERATOR))
    audit = client.get("/audit").text
    assert audit.index(">note<") >= 0
    entries = client.get("/api/audit", headers=basic(VIEWER)).json()["audit"]
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    for _ in range(2):
        client.post(
            "/api/replays",
            json={"selection": {"letter": [shown[-1]]}, "dry_run": False, "confirm_no_consumer": True},
            headers=basic(OPERATOR),
        )
    operations = client.get("/api/replays", headers=basic(VIEWER)).json()["replays"]
    assert [o["started_at"] for o in operations] == sorted(
        (o["started_at"] for o in operations), reverse=True
    )
    assert records.count(LetterFilter()) >= 5


def test_a_missing_letters_page_is_titled_by_what_happened(store_url: str, tmp_path: Path) -> None:
    """/letters/999 is a 404 titled "not found: no dead letter 999", not a refusal."""
    client, _ = in_process(tmp_path, [], store_url=store_url)
    sign_in(client, VIEWER)
    page = client.get("/letters/999")
    assert page.status_code == 404
    assert "<title>not found: no dead letter 999 · renewals</title>" in page.text
    assert "<h1>Not found</h1>" in page.text
