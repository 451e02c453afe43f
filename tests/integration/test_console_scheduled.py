"""Scheduled replays through the console, on SQLite and PostgreSQL: the API's `at` and the
confirmation form's field record the replay scheduled (this process runs nothing), it is listed
and shown waiting, cancelled while it waits, and a time past or without its zone is a 422."""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from support.console import OPERATOR, basic, in_process
from support.letters import new_letter
from worker.dead_letters.records import DeadLetterRecords


@pytest.fixture
def console(store_url: str, tmp_path: Path) -> tuple[TestClient, DeadLetterRecords]:
    return in_process(tmp_path, [new_letter(event_id=f"e-{n}") for n in range(3)], store_url=store_url)


def test_the_api_schedules_a_replay_lists_it_and_cancels_it_while_it_waits(
    console: tuple[TestClient, DeadLetterRecords],
) -> None:
    """POST /api/replays with `at: +1h`: 202, status scheduled with its time, nothing replayed;
    listed by GET /api/replays; DELETE ends it cancelled at once; the letters stay new."""
    client, records = console
    started = client.post(
        "/api/replays", json={"selection": {"all": True}, "at": "+1h"}, headers=basic(OPERATOR)
    )
    assert started.status_code == 202, started.text
    operation = started.json()
    due = datetime.fromisoformat(operation["not_before"])
    assert operation["status"] == "scheduled" and operation["total"] == 3 and operation["done"] == 0
    assert timedelta(minutes=59) < due - datetime.now(UTC) <= timedelta(hours=1)
    [listed] = client.get("/api/replays", headers=basic(OPERATOR)).json()["replays"]
    assert (listed["id"], listed["status"]) == (operation["id"], "scheduled")
    cancelled = client.delete(f"/api/replays/{operation['id']}", headers=basic(OPERATOR))
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert records.count() == 3 and records.operation(operation["id"]).replayed == 0


@pytest.mark.parametrize(
    ("at", "says"),
    [("2020-01-01T00:00:00Z", "in the past"), ("2999-01-01T00:00:00", "no zone"), ("soon", "ISO 8601")],
)
def test_the_api_and_the_form_refuse_a_time_a_replay_cannot_wait_for(
    console: tuple[TestClient, DeadLetterRecords], at: str, says: str
) -> None:
    """`at` past, without a zone or not a time: a 422 saying so, from the API and the
    confirmation form alike, and no operation recorded."""
    client, records = console
    api = client.post("/api/replays", json={"selection": {"all": True}, "at": at}, headers=basic(OPERATOR))
    assert api.status_code == 422 and says in api.text
    form = {"action": "replay", "scope": "matching", "all": "true", "at": at}
    page = client.post("/actions/confirm", data=form, headers=basic(OPERATOR))
    assert page.status_code == 422 and says in page.text
    assert records.operations() == []


def test_the_confirmation_form_schedules_and_the_replay_page_shows_it_waiting_with_a_cancel(
    console: tuple[TestClient, DeadLetterRecords],
) -> None:
    """The preview offers an `at` field; confirming with `+30m` leads to the replay's page,
    which says when it is due and offers to cancel it; cancelling ends it cancelled."""
    client, records = console
    form = {"action": "replay", "scope": "matching", "all": "true"}
    preview = client.post("/actions/preview", data=form, headers=basic(OPERATOR))
    assert preview.status_code == 200 and 'name="at"' in preview.text
    confirmed = client.post("/actions/confirm", data={**form, "at": "+30m"}, headers=basic(OPERATOR))
    assert confirmed.status_code == 303
    operation_id = confirmed.headers["location"].rsplit("/", 1)[-1]
    assert records.operation(operation_id).status == "scheduled"
    page = client.get(f"/replays/{operation_id}", headers=basic(OPERATOR)).text
    assert 'id="scheduled"' in page and 'id="cancel-replay"' in page
    assert client.post(f"/replays/{operation_id}/cancel", headers=basic(OPERATOR)).status_code == 303
    assert records.operation(operation_id).status == "cancelled" and records.count() == 3
