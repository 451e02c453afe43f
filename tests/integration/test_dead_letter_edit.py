"""Edit and retry (`renewals dlq edit`, the console's API), on SQLite and PostgreSQL, through the
real broker: refused by the model with its errors, a locked header refused, an accepted edit
published as a copy under a new message id that names the original, the original resolved only
once the broker confirms, a concurrent change refused, the switch off, and the audit's before
and after."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from support.client import NAMES, Client
from support.console import OPERATOR, VIEWER, basic, in_process
from support.letters import new_letter
from worker.cli import main
from worker.dead_letters import actions
from worker.dead_letters.guardrails import EditPolicy, EditRefused
from worker.dead_letters.model import LetterFilter
from worker.dead_letters.records import DeadLetterRecords
from worker.settings import Settings
from worker.store import open_store

pytestmark = pytest.mark.any_broker  # confirms and a missing exchange behave alike on every version

BROKEN = {
    "specversion": "1.0",
    "id": "oc-1",
    "source": "urn:billing",
    "type": "OwnerChanged",
    "time": "2026-11-20T09:00:00Z",
    "data": {"partner_id": "p-1", "owner": "partner"},
}
FIXED = {**BROKEN, "data": {**BROKEN["data"], "partner_contact": {"email": "pat@partner.example"}}}
STILL_WRONG = {**BROKEN, "time": "not a time", "data": {"partner_id": "p-1", "owner": "someone"}}


class Setting:
    """A store holding one OwnerChanged letter dead for a missing partner_contact, and a vhost
    whose events exchange has a queue that sees what is published to it."""

    def __init__(self, store_url: str, amqp_url: str, *, exchange: bool = True) -> None:
        self.store_url, self.amqp_url = store_url, amqp_url
        store = open_store(store_url)
        store.migrate()
        self.records = DeadLetterRecords(store)
        self.records.insert(
            [
                new_letter(
                    event_id="oc-1",
                    event_type="OwnerChanged",
                    reason="invalid_payload",
                    detail="data: owner 'partner' needs a partner_contact",
                    headers={"tenant": "eu-1"},
                    body=json.dumps(BROKEN).encode(),
                )
            ]
        )
        self.letter_id = self._first()
        self.client = Client(amqp_url)
        if exchange:
            self.client.channel.exchange_declare(NAMES.events_exchange, "topic", durable=True)
            self.seen = self.client.observe(NAMES.events_exchange)

    def _first(self) -> int:
        return next(iter(self.records.letters(LetterFilter()))).summary.id

    def env(self, **more: str) -> dict[str, str]:
        return {
            "RENEWALS_STORE_URL": self.store_url,
            "RENEWALS_AMQP_URL": self.amqp_url,
            "RENEWALS_LOG_FORMAT": "json",
            "RENEWALS_DLQ_EDIT_ENABLED": "true",
            "RENEWALS_DLQ_EDIT_TYPES": "OwnerChanged",
            **more,
        }

    def edit(self, tmp_path: Path, body: dict[str, Any], *args: str, **env: str) -> Result:
        path = tmp_path / "edited.json"
        path.write_text(json.dumps(body))
        return CliRunner().invoke(
            main, ["dlq", "edit", f"#{self.letter_id}", "--body-file", str(path), *args], env=self.env(**env)
        )

    def policy(self) -> EditPolicy:
        return EditPolicy.of(
            Settings(
                store_url=self.store_url,
                amqp_url=self.amqp_url,
                dlq_edit_enabled=True,
                dlq_edit_types=("OwnerChanged",),
            )
        )

    def status(self) -> str:
        letter = self.records.get(self.letter_id)
        assert letter is not None
        return letter.summary.status


@pytest.fixture
def setting(store_url: str, amqp_url: str) -> Iterator[Setting]:
    made = Setting(store_url, amqp_url)
    yield made
    made.client.close()


def test_the_switch_off_is_one_line_naming_the_setting(setting: Setting, tmp_path: Path) -> None:
    """With RENEWALS_DLQ_EDIT_ENABLED unset, `dlq edit` exits 78 with one line naming it, and
    the letter is untouched."""
    result = setting.edit(tmp_path, FIXED, "--yes", RENEWALS_DLQ_EDIT_ENABLED="false")
    assert result.exit_code == 78, result.output
    assert result.stderr.strip().splitlines() == [
        "Error: editing dead letters is off: set RENEWALS_DLQ_EDIT_ENABLED=true to allow it"
    ]
    assert setting.status() == "new" and setting.client.count(setting.seen) == 0


def test_a_type_not_listed_is_refused_naming_the_types_setting(setting: Setting, tmp_path: Path) -> None:
    """With only RenewalApproaching listed, an OwnerChanged letter is refused (exit 78) by a
    line that names RENEWALS_DLQ_EDIT_TYPES."""
    result = setting.edit(tmp_path, FIXED, "--yes", RENEWALS_DLQ_EDIT_TYPES="RenewalApproaching")
    assert result.exit_code == 78, result.output
    assert "RENEWALS_DLQ_EDIT_TYPES" in result.stderr and "OwnerChanged" in result.stderr
    assert setting.status() == "new"


def test_a_body_the_model_refuses_is_refused_with_each_error_on_a_line(
    setting: Setting, tmp_path: Path
) -> None:
    """An edited body with a bad time and an unknown owner is refused before anything is sent:
    one `path: message` line per error of the model, nothing published, the letter new."""
    result = setting.edit(tmp_path, STILL_WRONG, "--yes")
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("time: Input should be a valid datetime")
    assert lines[1].startswith("data.owner: Input should be 'platform', 'partner' or 'default'")
    assert lines[-1] == (
        f"Error: the edited body of #{setting.letter_id} is refused by the event's model (2 problems above): nothing sent"
    )
    assert setting.status() == "new" and setting.client.quiet(setting.seen, 0.3)


def test_a_locked_header_is_refused(setting: Setting, tmp_path: Path) -> None:
    """Setting x-error-reason or x-replay-of-letter, or the routing header CC, is refused naming
    the header; nothing is sent."""
    for header in ("x-error-reason=fixed", "x-replay-of-letter=7", "CC=elsewhere"):
        result = setting.edit(tmp_path, FIXED, "--yes", "--header", header)
        assert result.exit_code == 1, result.output
        name = header.split("=")[0]
        assert f"header {name} is locked" in result.stderr
    assert setting.status() == "new" and setting.client.quiet(setting.seen, 0.3)


def test_an_accepted_edit_is_a_copy_under_a_new_message_id_and_resolves_the_original(
    setting: Setting, tmp_path: Path
) -> None:
    """The fixed body with a changed header of upstream's is published once, confirmed, under a
    new message id that names the original (letter id, edit operation, original message id);
    the letter is then replayed, its history says edited, and the audit keeps the before and
    after."""
    result = setting.edit(tmp_path, FIXED, "--yes", "--json", "--header", "tenant=eu-2")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    [(method, properties, body)] = setting.client.take(setting.seen, 1)
    assert json.loads(body) == FIXED and method.routing_key == "owner.changed"
    assert properties.message_id == done["message_id"] != "oc-1"
    headers = properties.headers
    assert headers["x-replay-of-letter"] == setting.letter_id
    assert headers["x-replay-operation"] == done["operation_id"]
    assert headers["x-edited-from-message-id"] == "oc-1"
    assert headers["tenant"] == "eu-2" and headers["x-replay-count"] == 1
    assert not any(name.startswith("x-error-") for name in headers)
    assert setting.status() == "replayed"
    edited = [entry for entry in setting.records.history(setting.letter_id) if entry.kind == "edited"]
    assert [(e.operation_id, e.message_id) for e in edited] == [(done["operation_id"], done["message_id"])]
    [audit] = actions.audit(setting.records, of=done["operation_id"])
    assert (audit.action, audit.selection, audit.counts) == ("edit", f"#{setting.letter_id}", {"edited": 1})
    [record] = setting.records.edits(setting.letter_id)
    assert json.loads(record.body_before) == BROKEN and json.loads(record.body_after) == FIXED
    assert record.headers_before["tenant"] == "eu-1" and record.headers_after["tenant"] == "eu-2"
    assert '+    "partner_contact": {' in done["diff"] and "+tenant: eu-2" in done["diff"]
    shown = CliRunner().invoke(main, ["dlq", "edits", "oc-1", "--json"], env=setting.env())
    assert shown.exit_code == 0, shown.output
    [document] = json.loads(shown.stdout)
    assert json.loads(document["before"]["body"]) == BROKEN and json.loads(document["after"]["body"]) == FIXED
    assert document["after"]["headers"]["x-replay-of-letter"] == setting.letter_id
    assert (document["message_id"], document["diff"]) == (done["message_id"], done["diff"])


def test_a_copy_the_broker_does_not_take_leaves_the_letter_as_it_was(
    store_url: str, amqp_url: str, tmp_path: Path
) -> None:
    """With no events exchange the broker refuses the copy: the letter stays new and free to
    replay, no edit is recorded, and the audit says it was not sent."""
    setting = Setting(store_url, amqp_url, exchange=False)
    try:
        result = setting.edit(tmp_path, FIXED, "--yes")
        assert result.exit_code == 1, result.output
        assert "the broker did not take the edited copy" in result.stderr and "is unchanged" in result.stderr
        assert setting.status() == "new"
        assert setting.records.edits(setting.letter_id) == []
        [audit] = actions.audit(setting.records, limit=1)
        assert (
            audit.action == "edit" and audit.counts == {"edited": 0} and audit.result.startswith("not sent: ")
        )
        held = setting.records._store.execute(
            "SELECT claimed_by FROM dead_letters WHERE id = ?", (setting.letter_id,)
        ).fetchone()
        assert held[0] is None
    finally:
        setting.client.close()


def test_a_letter_archived_since_it_was_opened_is_refused_saying_who(setting: Setting) -> None:
    """An edit checked, then the letter archived by someone else, then sent: refused with a line
    naming who archived it, nothing published."""
    draft = actions.draft_edit(
        setting.records, setting.policy(), setting.letter_id, json.dumps(FIXED).encode()
    )
    actions.archive(setting.records, "bob", LetterFilter(letter_ids=frozenset({setting.letter_id})))
    with pytest.raises(EditRefused) as refused:
        actions.edit(setting.records, "ana", draft, _Unused())
    assert refused.value.refusal == "moved"
    assert f"dead letter #{setting.letter_id} was archived by bob at " in str(refused.value)
    assert setting.status() == "archived" and setting.client.quiet(setting.seen, 0.2)


def test_a_letter_a_replay_holds_is_refused_while_it_holds_it(setting: Setting) -> None:
    """A replay that has claimed the letter keeps an edit off it until it lets go."""
    operation = actions.start_replay(
        setting.records, "bob", LetterFilter(), rate=None, to_original=False, force=False, max_replays=3
    )
    claimed = setting.records.claim(operation.id, limit=1)
    draft = actions.draft_edit(
        setting.records, setting.policy(), setting.letter_id, json.dumps(FIXED).encode()
    )
    with pytest.raises(
        EditRefused, match=f"being replayed or edited right now \\(operation {operation.id}\\)"
    ):
        actions.edit(setting.records, "ana", draft, _Unused())
    setting.records.release(claimed)
    assert setting.status() == "new"


def test_the_api_refuses_with_the_model_s_errors_then_accepts(setting: Setting, tmp_path: Path) -> None:
    """POST /api/letters/{id}/edit: a viewer is forbidden; a body the model refuses is a 422
    listing each error; a locked header a 422; the fixed body a 200 with the new message id,
    the letter then replayed."""
    client, _ = in_process(
        tmp_path,
        [],
        amqp_url=setting.amqp_url,
        store_url=setting.store_url,
        dlq_edit_enabled=True,
        dlq_edit_types=("OwnerChanged",),
    )
    path = f"/api/letters/{setting.letter_id}/edit"
    assert client.post(path, json={"body": FIXED}, headers=basic(VIEWER)).status_code == 403
    refused = client.post(path, json={"body": STILL_WRONG}, headers=basic(OPERATOR))
    assert refused.status_code == 422, refused.text
    errors = refused.json()["detail"]["errors"]
    assert [error.split(":")[0] for error in errors] == ["time", "data.owner"]
    locked = client.post(
        path, json={"body": FIXED, "headers": {"x-error-reason": "x"}}, headers=basic(OPERATOR)
    )
    assert (
        locked.status_code == 422
        and "header x-error-reason is locked" in locked.json()["detail"]["errors"][0]
    )
    accepted = client.post(path, json={"body": FIXED}, headers=basic(OPERATOR))
    assert accepted.status_code == 200, accepted.text
    [(_, properties, _)] = setting.client.take(setting.seen, 1)
    assert properties.message_id == accepted.json()["message_id"]
    assert setting.status() == "replayed"
    [document] = client.get(f"/api/letters/{setting.letter_id}/edits", headers=basic(VIEWER)).json()["edits"]
    assert json.loads(document["after"]["body"]) == FIXED and document["actor"] == OPERATOR[0]
    assert document["message_id"] == accepted.json()["message_id"]
    again = client.post(path, json={"body": FIXED}, headers=basic(OPERATOR))
    assert (
        again.status_code == 409 and "only a new letter can be edited" in again.json()["detail"]["errors"][0]
    )


def test_the_api_with_the_switch_off_says_which_setting(setting: Setting, tmp_path: Path) -> None:
    """With editing off, the API answers 403 naming RENEWALS_DLQ_EDIT_ENABLED."""
    client, _ = in_process(tmp_path, [], amqp_url=setting.amqp_url, store_url=setting.store_url)
    refused = client.post(
        f"/api/letters/{setting.letter_id}/edit", json={"body": FIXED}, headers=basic(OPERATOR)
    )
    assert refused.status_code == 403
    assert "RENEWALS_DLQ_EDIT_ENABLED" in refused.json()["detail"]["errors"][0]


class _Unused:
    """A publisher that must not be reached."""

    def republish(self, exchange: str, routing_key: str, body: bytes, properties: dict[str, Any]) -> None:
        raise AssertionError("nothing may be published")


def test_the_console_editor_shows_the_difference_and_sends_only_what_it_showed(
    setting: Setting, tmp_path: Path
) -> None:
    """The letter page offers "Edit and retry" to an operator only, and only when it is on;
    the editor's form refuses a bad body with the model's errors, shows the difference of a
    good one without sending it, sends nothing for a body changed after it was shown, and
    sends what was shown: the letter page then shows its edit's before and after."""
    client, _ = in_process(
        tmp_path / "on",
        [],
        amqp_url=setting.amqp_url,
        store_url=setting.store_url,
        dlq_edit_enabled=True,
        dlq_edit_types=("OwnerChanged",),
    )
    letter_page = f"/letters/{setting.letter_id}"
    assert "edit-and-retry" not in client.get(letter_page, headers=basic(VIEWER)).text
    assert client.get(f"{letter_page}/edit", headers=basic(VIEWER)).status_code == 403
    assert "edit-and-retry" in client.get(letter_page, headers=basic(OPERATOR)).text
    editor_page = client.get(f"{letter_page}/edit", headers=basic(OPERATOR))
    assert editor_page.status_code == 200 and "&#34;owner&#34;: &#34;partner&#34;" in editor_page.text
    assert 'value="tenant"' in editor_page.text and "x-error-reason" in editor_page.text  # editable, locked

    def post(body: dict[str, Any], **fields: str) -> Any:
        form = {"body": json.dumps(body), "header_name": "tenant", "header_value": "eu-1", **fields}
        return client.post(f"{letter_page}/edit", data=form, headers=basic(OPERATOR))

    refused = post(STILL_WRONG)
    assert (
        refused.status_code == 422 and 'id="edit-errors"' in refused.text and "data.owner: " in refused.text
    )
    shown = post(FIXED)
    assert shown.status_code == 200 and 'id="edit-send"' in shown.text and "partner_contact" in shown.text
    previewed = shown.text.split('name="previewed" value="')[1].split('"')[0]
    changed = post({**FIXED, "subject": "changed after"}, step="send", previewed=previewed)
    assert changed.status_code == 200 and 'id="edit-diff"' in changed.text  # shown again, not sent
    assert setting.status() == "new" and setting.client.quiet(setting.seen, 0.3)
    sent = post(FIXED, step="send", previewed=previewed)
    assert sent.status_code == 303 and sent.headers["location"] == letter_page
    setting.client.take(setting.seen, 1)
    page = client.get(letter_page, headers=basic(OPERATOR)).text
    assert setting.status() == "replayed" and "edit-record" in page and "partner_contact" in page
    off, _ = in_process(tmp_path / "off", [], amqp_url=setting.amqp_url, store_url=setting.store_url)
    assert "edit-and-retry" not in off.get(letter_page, headers=basic(OPERATOR)).text


def test_the_command_shows_the_difference_and_asks_before_sending(setting: Setting, tmp_path: Path) -> None:
    """Without --yes the command prints the difference and asks: "n" sends nothing; a body on
    standard input needs --yes; "y" sends it."""
    declined = CliRunner().invoke(
        main,
        ["dlq", "edit", f"#{setting.letter_id}", "--body-file", str(_written(tmp_path, FIXED))],
        env=setting.env(),
        input="n\n",
    )
    assert declined.exit_code == 1, declined.output
    assert '+    "partner_contact": {' in declined.stdout and "nothing sent" in declined.stderr
    piped = CliRunner().invoke(
        main, ["dlq", "edit", "oc-1", "--body-file", "-"], env=setting.env(), input=json.dumps(FIXED)
    )
    assert piped.exit_code == 1 and "add --yes to send it" in piped.stderr
    assert setting.status() == "new" and setting.client.quiet(setting.seen, 0.3)
    accepted = CliRunner().invoke(
        main,
        ["dlq", "edit", "oc-1", "--body-file", str(_written(tmp_path, FIXED))],
        env=setting.env(),
        input="y\n",
    )
    assert accepted.exit_code == 0, accepted.output
    assert f"#{setting.letter_id} is replayed" in accepted.stdout
    setting.client.take(setting.seen, 1)
    assert setting.status() == "replayed"


def _written(folder: Path, document: dict[str, Any]) -> Path:
    path = folder / "body.json"
    path.write_text(json.dumps(document))
    return path
