"""The console's pages and API over a real SQLite store: groups, search and keyset paging, a
letter with its history and notes, dry runs, archive and purge, the owner lookup and the health
strip; and nothing a message carries ever becomes markup in the page."""

import json
from datetime import timedelta
from pathlib import Path

from markupsafe import escape
from starlette.testclient import TestClient

from support.console import OPERATOR, VIEWER, basic, csrf_token, in_process, sign_in, users_file
from support.letters import new_letter, spread
from support.polling import wait_until
from worker.console.actions import owner
from worker.console.app import create_app
from worker.console.serve import console_of_settings
from worker.dead_letters.model import LetterFilter
from worker.settings import Settings
from worker.tools.owners import described


def escape_(text: str) -> str:
    """As Jinja2's autoescape writes it."""
    return str(escape(text))


SCRIPT_ID = '<script>alert("id")</script>'
HOSTILE_HEADER = "<img src=x onerror=alert(1)>"
HOSTILE_BODY = json.dumps({"id": "x", "data": {"note": '</pre><script>alert("body")</script>'}}).encode()


def test_a_letter_carrying_script_in_id_headers_body_and_detail_shows_it_as_text(tmp_path: Path) -> None:
    """Body, headers, ids and detail are escaped on every page that shows them; no script runs."""
    letter = new_letter(
        event_id=SCRIPT_ID,
        detail="bad <b onmouseover=alert(2)>owner</b>",
        headers={"x-evil": HOSTILE_HEADER, "<script>": "name"},
        body=HOSTILE_BODY,
    )
    client, records = in_process(tmp_path, [letter])
    [summary] = records.page().letters
    sign_in(client, VIEWER)
    pages = {
        path: client.get(path).text
        for path in ("/", "/letters", f"/letters/{summary.id}", f"/letters?text={SCRIPT_ID}")
    }
    for path, text in pages.items():
        assert "<script>alert" not in text, path
        assert "<b onmouseover" not in text and "<img src=x" not in text, path
    letter_page = pages[f"/letters/{summary.id}"]
    assert escape_(SCRIPT_ID) in letter_page
    assert escape_(HOSTILE_HEADER) in letter_page
    assert escape_('"note": "</pre><script>alert(\\"body\\")</script>"') in letter_page  # JSON text
    assert SCRIPT_ID in pages[f"/letters?text={SCRIPT_ID}"].replace("&lt;", "<").replace("&gt;", ">").replace(
        "&#34;", '"'
    )


def test_the_body_is_shown_as_indented_json(tmp_path: Path) -> None:
    """A JSON body is pretty-printed text inside <pre>."""
    client, records = in_process(tmp_path, [new_letter(event_id="evt-pretty")])
    [summary] = records.page().letters
    sign_in(client, VIEWER)
    page = client.get(f"/letters/{summary.id}").text
    assert '<pre class="body" id="body">{\n  &#34;id&#34;: &#34;evt-pretty&#34;,' in page


def test_groups_show_counts_and_link_to_their_letters(tmp_path: Path) -> None:
    """Three kinds of failure make three groups, each with its count; a group's link lists its letters."""
    client, _ = in_process(tmp_path, spread(30))
    sign_in(client, VIEWER)
    api = client.get("/api/groups").json()["groups"]
    assert sorted(g["count"] for g in api) == [10, 10, 10]
    page = client.get("/").text
    for group in api:
        assert f'data-fingerprint="{group["fingerprint"]}"' in page
    letters = client.get("/api/dead-letters", params={"group": api[0]["fingerprint"], "limit": 500}).json()
    assert len(letters["letters"]) == 10 and {letter["group"] for letter in letters["letters"]} == {
        api[0]["fingerprint"]
    }


def test_search_filters_and_keyset_pages_cover_every_letter_once(tmp_path: Path) -> None:
    """Pages of 50 (newest first) follow next_after to the end; each letter appears once; text search finds one."""
    client, _ = in_process(tmp_path, spread(120))
    auth = basic(VIEWER)
    seen: list[str] = []
    after = None
    while True:
        page = client.get(
            "/api/dead-letters", params={"limit": 50, **({"after": after} if after else {})}, headers=auth
        ).json()
        seen += [letter["event_id"] for letter in page["letters"]]
        after = page["next_after"]
        if after is None:
            break
    assert len(seen) == 120 and len(set(seen)) == 120 and seen[0] == "evt-000119"
    found = client.get("/api/dead-letters", params={"text": "evt-000042"}, headers=auth).json()["letters"]
    assert [letter["event_id"] for letter in found] == ["evt-000042"]
    by_reason = client.get(
        "/api/dead-letters", params={"reason": "invalid_payload", "limit": 500}, headers=auth
    ).json()
    assert len(by_reason["letters"]) == 40
    sign_in(client, VIEWER)
    first = client.get("/letters").text
    assert first.count('class="letter"') == 50 and 'id="next-page"' in first


def test_a_letter_page_shows_history_and_an_operators_note(tmp_path: Path) -> None:
    """A note added on the page appears in the letter's notes, its history and the audit."""
    client, records = in_process(tmp_path, [new_letter()])
    [summary] = records.page().letters
    token = sign_in(client, OPERATOR)
    response = client.post(
        f"/letters/{summary.id}/notes", data={"text": "billing fixes p-acme <today>", "csrf_token": token}
    )
    assert response.status_code == 303
    page = client.get(f"/letters/{summary.id}").text
    assert "billing fixes p-acme &lt;today&gt;" in page and 'class="history-note"' in page
    assert [e.action for e in records.audit_log()] == ["note"]


def test_a_dry_run_says_what_a_replay_would_do_and_changes_nothing(tmp_path: Path) -> None:
    """POST /api/replays with dry_run: one plan per letter, the letters still new, nothing audited."""
    letters = [new_letter(), new_letter(), new_letter(event_type="Unknown", reason="unknown_type")]
    client, records = in_process(tmp_path, letters)
    response = client.post(
        "/api/replays", json={"selection": {"all": True}, "dry_run": True}, headers=basic(OPERATOR)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["selected"] == 3
    assert sorted(p["action"] for p in body["plans"]) == ["replay", "replay", "skip"]
    assert records.count() == 3 and records.operations() == []


def test_the_preview_page_then_purge_confirmed(tmp_path: Path) -> None:
    """Purge from the page: a preview with the count, then the confirmation does it."""
    client, records = in_process(tmp_path, [new_letter(reason="invalid_payload"), new_letter()])
    token = sign_in(client, OPERATOR)
    form = {"action": "purge", "reason": "invalid_payload", "csrf_token": token}
    preview = client.post("/actions/preview", data=form)
    assert preview.status_code == 200 and "Selected: <strong>1</strong>" in preview.text
    assert records.count() == 2
    done = client.post("/actions/confirm", data=form)
    assert done.status_code == 200 and "Purged 1 letters" in done.text
    assert records.count() == 1 and records.audit_log()[0].action == "purge"


def test_the_owner_lookup_shows_what_owners_show_prints(tmp_path: Path) -> None:
    """The page's output is `renewals owners show`'s text; the API gives its JSON."""
    client, records = in_process(tmp_path, [])
    sign_in(client, VIEWER)
    page = client.get("/owners", params={"partner": "p-acme", "client": "c-17"}).text
    console_store = records._store  # the same store file the console reads
    expected = described(owner(console_store, "p-acme", "c-17"))
    assert str(escape(expected)) in page
    assert "NO RECIPIENT" in page
    api = client.get("/api/owners", params={"partner": "p-acme"}, headers=basic(VIEWER)).json()
    assert api["owner"] == "platform" and api["resolved_from"] == "system_default"


def test_the_health_strip_says_the_broker_is_unreachable_without_its_password(tmp_path: Path) -> None:
    """Store answers, broker does not: not ready, the reason shown, the password masked."""
    client, _ = in_process(tmp_path, [new_letter()], amqp_url="amqp://guest:s3cret-pw@127.0.0.1:9/")
    health = client.get("/api/health", headers=basic(VIEWER)).json()
    assert health["ready"] is False and health["store_error"] is None and health["broker_error"]
    assert "s3cret-pw" not in json.dumps(health)
    sign_in(client, VIEWER)
    strip = client.get("/health").text
    assert "NOT READY" in strip and "s3cret-pw" not in strip


def test_archive_by_age_from_the_letters_filters(tmp_path: Path) -> None:
    """ "Failed before" (a datetime-local field, UTC) selects the old letters; archiving takes only those."""
    client, records = in_process(tmp_path, spread(10, every=timedelta(hours=1)))  # 09:00 to 18:00
    token = sign_in(client, OPERATOR)
    listed = client.get("/letters", params={"until": "2026-11-20T12:00"}).text
    assert listed.count('class="letter"') == 3 and 'value="2026-11-20T12:00"' in listed
    form = {"action": "archive", "until": "2026-11-20T12:00", "scope": "matching", "csrf_token": token}
    preview = client.post("/actions/preview", data=form).text
    assert "Selected: <strong>3</strong>" in preview and "--until 2026-11-20" in preview
    assert client.post("/actions/confirm", data=form).status_code == 200
    assert records.count() == 7
    assert records.count(LetterFilter(statuses=frozenset({"archived"}))) == 3


def test_the_pages_and_api_work_the_same_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """Groups, search, paging, a letter's page (escaped), a note and an archive over PostgreSQL."""
    letters = [*spread(60), new_letter(event_id=SCRIPT_ID, body=HOSTILE_BODY)]
    client, records = in_process(tmp_path, letters, store_url=postgres_url)
    auth = basic(VIEWER)
    assert sorted(g["count"] for g in client.get("/api/groups", headers=auth).json()["groups"]) == [
        1,
        20,
        20,
        20,
    ]
    first = client.get("/api/dead-letters", params={"limit": 50}, headers=auth).json()
    second = client.get(
        "/api/dead-letters", params={"limit": 50, "after": first["next_after"]}, headers=auth
    ).json()
    assert len(first["letters"]) + len(second["letters"]) == 61 and second["next_after"] is None
    [hostile] = client.get("/api/dead-letters", params={"text": "<script>"}, headers=auth).json()["letters"]
    token = sign_in(client, OPERATOR)
    page = client.get(f"/letters/{hostile['id']}").text
    assert escape_(SCRIPT_ID) in page and "<script>alert" not in page
    client.post(f"/letters/{hostile['id']}/notes", data={"text": "looked at", "csrf_token": token})
    archived = client.post(
        "/api/archive", json={"reason": ["invalid_payload"]}, headers=basic(OPERATOR)
    ).json()
    assert archived["archived"] == 20 and records.count() == 41
    assert [e.action for e in records.audit_log()] == ["archive", "note"]


def test_an_unknown_letter_is_a_404_page_and_a_404_in_the_api(tmp_path: Path) -> None:
    """A letter id nobody has: the page says so in HTML, the API in JSON."""
    client, _ = in_process(tmp_path, [])
    assert client.get("/api/dead-letters/999", headers=basic(VIEWER)).json() == {
        "detail": "no dead letter 999"
    }
    sign_in(client, VIEWER)
    page = client.get("/letters/999")
    assert page.status_code == 404 and "no dead letter 999" in page.text and "<h1>Not found</h1>" in page.text
    assert "<title>not found" in page.text and "refused" not in page.text.lower()


def test_an_error_page_is_titled_for_what_happened(tmp_path: Path) -> None:
    """An error page's heading says what happened (here: not valid), never a blanket "refused",
    which means only that the broker or the store refused our credentials."""
    client, _ = in_process(tmp_path, [])
    sign_in(client, VIEWER)
    invalid = client.get("/letters?after=notanumber")
    assert invalid.status_code == 422 and "<h1>Not valid</h1>" in invalid.text
    assert "<title>not valid" in invalid.text and "Refused" not in invalid.text


def test_a_store_that_does_not_answer_is_a_503_saying_so_without_its_password(tmp_path: Path) -> None:
    """PostgreSQL down: the API says 503 and why in one line, the sign-in page too, the password
    masked; the health strip says not ready."""
    down = "postgresql://postgres:pg-s3cret@127.0.0.1:1/test"
    console = console_of_settings(Settings(store_url=down, console_users=str(users_file(tmp_path))))
    client = TestClient(create_app(console), base_url="http://console.test", follow_redirects=False)
    response = client.get("/api/groups", headers=basic(VIEWER))
    assert response.status_code == 503 and response.json()["detail"].startswith("the store does not answer")
    assert "pg-s3cret" not in response.text
    health = client.get("/api/health", headers=basic(VIEWER)).json()
    assert health["ready"] is False and "pg-s3cret" not in json.dumps(health)
    # Sessions are kept in the store: signing in says the same (nobody signs in while it is down).
    form = {"username": VIEWER[0], "password": VIEWER[1], "csrf_token": csrf_token(client, "/login")}
    page = client.post("/login", data=form)
    assert (
        page.status_code == 503 and "the store does not answer" in page.text and "pg-s3cret" not in page.text
    )


def test_a_replay_that_cannot_reach_the_broker_ends_cancelled_with_every_letter_still_new(
    tmp_path: Path,
) -> None:
    """The background replay fails to connect: the operation ends cancelled (resumable), nothing lost."""
    client, records = in_process(tmp_path, [new_letter(), new_letter()])
    started = client.post("/api/replays", json={"selection": {"all": True}}, headers=basic(OPERATOR))
    assert started.status_code == 202, started.text
    path = f"/api/replays/{started.json()['id']}"
    wait_until(
        lambda: client.get(path, headers=basic(VIEWER)).json()["status"] != "running",
        what="the replay to end",
    )
    ended = client.get(path, headers=basic(VIEWER)).json()
    assert (ended["status"], ended["done"]) == ("cancelled", 0)
    assert records.count() == 2
    assert [e.action for e in records.audit_log()] == ["replay"]
