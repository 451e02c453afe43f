"""The console's Forget page and `POST /api/forget`, on both stores: operators only, a preview
that changes nothing, a confirmation that erases, the same use case as `renewals forget`."""

import json
import uuid
from pathlib import Path

from fastapi.testclient import TestClient

from events import Contact
from support.console import OPERATOR, VIEWER, basic, csrf_token, in_process, sign_in
from support.letters import new_letter
from worker.store import SqlStore, open_store


def seeded(tmp_path: Path, store_url: str) -> tuple[TestClient, SqlStore, str]:
    """The console over a store holding one decision maker; the client, the store, the address."""
    client, _ = in_process(tmp_path, [], store_url=store_url)
    store = open_store(store_url)  # a connection of the test's own, to seed and read back
    address = f"dora.{uuid.uuid4().hex[:8]}@example.com"
    with store.writing():
        store.execute(
            "INSERT INTO decision_makers VALUES ('client-1', ?, 1, 'e-1')",
            (Contact(email=address, name="Dora").model_dump_json(),),
        )
    return client, store, address


def decision_makers(store: SqlStore) -> int:
    return int(store.execute("SELECT count(*) FROM decision_makers").fetchone()[0])


def test_a_viewer_is_refused_the_page_the_form_and_the_api(tmp_path: Path, store_url: str) -> None:
    """A viewer gets 403 from the Forget page, its form and the API, and nothing is erased."""
    client, store, address = seeded(tmp_path, store_url)
    assert (
        client.post(
            "/api/forget", json={"email": address, "confirm": True}, headers=basic(VIEWER)
        ).status_code
        == 403
    )
    token = sign_in(client, VIEWER)
    assert client.get("/forget").status_code == 403
    refused = client.post("/forget", data={"csrf_token": token, "email": address, "confirm": "yes"})
    assert refused.status_code == 403
    assert decision_makers(store) == 1


def test_the_api_previews_then_erases_and_says_a_mistake(tmp_path: Path, store_url: str) -> None:
    """POST /api/forget without confirm counts and changes nothing; with confirm it erases; a bad address is a 422 naming it."""
    client, store, address = seeded(tmp_path, store_url)
    shown = client.post("/api/forget", json={"email": address}, headers=basic(OPERATOR)).json()
    assert shown["erased"] is False and shown["tables"] == {"decision_makers": {"deleted": 1}}
    assert decision_makers(store) == 1
    done = client.post(
        "/api/forget", json={"email": address, "confirm": True}, headers=basic(OPERATOR)
    ).json()
    assert done["erased"] is True and done["operation_id"]
    assert decision_makers(store) == 0
    [actor] = store.execute("SELECT actor FROM erasures").fetchone()
    assert actor == OPERATOR[0]
    bad = client.post("/api/forget", json={"email": "nobody"}, headers=basic(OPERATOR))
    assert bad.status_code == 422 and "is not an e-mail address" in bad.text


def test_the_form_shows_a_preview_and_its_confirmation_erases(tmp_path: Path, store_url: str) -> None:
    """An operator's form: the preview lists the table and what the store cannot reach, with an Erase button; confirming erases."""
    client, store, address = seeded(tmp_path, store_url)
    sign_in(client, OPERATOR)
    token = csrf_token(client, "/forget")
    page = client.post("/forget", data={"csrf_token": token, "email": address})
    assert page.status_code == 200 and "Nothing was changed yet" in page.text
    assert "decision_makers" in page.text and 'id="confirm"' in page.text and "backups" in page.text
    assert decision_makers(store) == 1
    done = client.post("/forget", data={"csrf_token": token, "email": address, "confirm": "yes"})
    assert done.status_code == 200 and "Erased the address" in done.text
    assert decision_makers(store) == 0


def test_an_erased_letter_s_page_says_erased_instead_of_the_body(tmp_path: Path, store_url: str) -> None:
    """A dead letter naming the address: after the API's erasure its page says "Erased ... (operation X)", shows no body and no address, and the API's letter names the operation."""
    address = f"dora.{uuid.uuid4().hex[:8]}@example.com"
    body = json.dumps({"id": "evt-erased", "data": {"decision_maker": {"email": address}}}).encode()
    client, records = in_process(
        tmp_path, [new_letter(event_id="evt-erased", body=body)], store_url=store_url
    )
    [letter] = records.find("evt-erased")
    assert address in client.get(f"/api/dead-letters/{letter.summary.id}", headers=basic(VIEWER)).text
    done = client.post(
        "/api/forget", json={"email": address, "confirm": True}, headers=basic(OPERATOR)
    ).json()
    sign_in(client, VIEWER)
    page = client.get(f"/letters/{letter.summary.id}")
    assert page.status_code == 200 and f"(operation {done['operation_id']})" in page.text
    assert 'class="erased"' in page.text and address not in page.text
    shown = client.get(f"/api/dead-letters/{letter.summary.id}", headers=basic(VIEWER)).json()
    assert shown["erased_by"] == done["operation_id"] and shown["status"] == "archived"
