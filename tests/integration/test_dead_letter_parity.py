"""`renewals dlq` and the console's API do the same thing to dead letters: one scenario (note,
archive, purge after its preview, a replay cancelled) run through each leaves two stores in the
same state with the same audit, and `renewals dlq audit` shows the console's actions too."""

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result
from starlette.testclient import TestClient

from support.console import OPERATOR, basic, in_process
from support.letters import new_letter
from worker.cli import main
from worker.dead_letters import actions
from worker.dead_letters.model import LetterFilter, NewLetter
from worker.dead_letters.records import DeadLetterRecords

NO_RECIPIENT = LetterFilter(reasons=frozenset({"no_recipient"}))


def letters() -> list[NewLetter]:
    return [
        new_letter(event_id="n-1"),
        new_letter(event_id="a-1", reason="invalid_payload"),
        new_letter(event_id="p-1", reason="retries_exhausted"),
        new_letter(event_id="p-2", reason="retries_exhausted"),
        new_letter(event_id="r-1", reason="no_recipient"),
    ]


def dlq(url: str, *args: str) -> Result:
    env = {
        "RENEWALS_STORE_URL": url,
        "RENEWALS_LOG_FORMAT": "json",
        "RENEWALS_AMQP_URL": "amqp://guest:guest@127.0.0.1:9/",  # none: no action here needs one
    }
    return CliRunner().invoke(main, ["dlq", *args], env=env)


def through_the_command(url: str, records: DeadLetterRecords) -> None:
    note_on = records.find("n-1")[0].summary.id
    assert dlq(url, "note", f"#{note_on}", "billing fixes it").exit_code == 0
    assert dlq(url, "archive", "--id", "a-1", "--yes").exit_code == 0
    preview = dlq(url, "purge", "--reason", "retries_exhausted")
    assert preview.exit_code == 1 and "would purge 2" in preview.stderr
    assert dlq(url, "purge", "--reason", "retries_exhausted", "--yes").exit_code == 0
    replay = actions.start_replay(
        records, "ana", NO_RECIPIENT, rate=5, to_original=False, force=False, max_replays=3
    )
    assert dlq(url, "cancel", replay.id).exit_code == 0


def through_the_api(client: TestClient, records: DeadLetterRecords) -> None:
    auth = basic(OPERATOR)
    note_on = records.find("n-1")[0].summary.id
    noted = client.post(f"/api/dead-letters/{note_on}/notes", json={"text": "billing fixes it"}, headers=auth)
    assert noted.status_code == 201, noted.text
    assert client.post("/api/archive", json={"id": ["a-1"]}, headers=auth).status_code == 200
    purged = client.post("/api/purge", json={"reason": ["retries_exhausted"]}, headers=auth)
    assert purged.status_code == 200 and purged.json()["purged"] == 2
    replay = actions.start_replay(
        records, "ana", NO_RECIPIENT, rate=5, to_original=False, force=False, max_replays=3
    )
    assert client.delete(f"/api/replays/{replay.id}", headers=auth).status_code == 200


def state(records: DeadLetterRecords) -> dict[str, Any]:
    """The letters' statuses and histories, and the audit, without who acted, when, or ids."""
    everything = LetterFilter(statuses=frozenset({"new", "archived", "purged", "replayed"}))
    return {
        "letters": {
            letter.summary.event_id: (
                letter.summary.status,
                [(entry.kind, entry.text) for entry in records.history(letter.summary.id)],
            )
            for letter in records.letters(everything)
        },
        "audit": [
            (entry.action, entry.selection, entry.counts, entry.result, entry.operation_id is not None)
            for entry in records.audit_log()
        ],
    }


def test_the_command_and_the_api_leave_the_same_state_and_audit(tmp_path: Path) -> None:
    """The same actions through `renewals dlq` and through the API: same letters, same audit."""
    cli_url = f"sqlite:///{tmp_path / 'cli.db'}"
    _, cli_records = in_process(tmp_path / "cli-console", letters(), store_url=cli_url)
    through_the_command(cli_url, cli_records)
    client, api_records = in_process(tmp_path / "api", letters())
    through_the_api(client, api_records)
    by_command, by_api = state(cli_records), state(api_records)
    assert by_command == by_api
    assert [action for action, *_ in by_command["audit"]] == ["cancel", "purge", "archive", "note"]
    assert by_command["letters"]["p-1"] == ("purged", [("purged", None)])
    assert by_command["letters"]["n-1"] == ("new", [("note", "billing fixes it")])


def test_dlq_audit_shows_the_console_s_actions_newest_first(tmp_path: Path) -> None:
    """`renewals dlq audit --json` lists what an operator did in the console, newest first,
    each row under an operation id; the table says the same."""
    client, records = in_process(tmp_path, letters())
    url = f"sqlite:///{tmp_path / 'renewals.db'}"
    through_the_api(client, records)
    result = dlq(url, "audit", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [row["action"] for row in rows] == ["cancel", "purge", "archive", "note"]
    assert rows[1]["actor"] == OPERATOR[0] and rows[1]["counts"] == {"purged": 2}
    assert all(row["operation_id"] for row in rows)
    one = dlq(url, "audit", "--operation", rows[1]["operation_id"], "--json")
    assert [row["action"] for row in json.loads(one.stdout)] == ["purge"]
    table = dlq(url, "audit").stdout.splitlines()
    assert table[0].split()[:3] == ["at", "by", "action"] and "purged 2" in table[3]


def test_dlq_audit_on_a_store_nobody_acted_on_says_so(tmp_path: Path) -> None:
    """An empty audit is one line, not an empty table."""
    in_process(tmp_path, letters())
    result = dlq(f"sqlite:///{tmp_path / 'renewals.db'}", "audit")
    assert result.exit_code == 0 and result.stdout.strip() == "nothing audited yet"
