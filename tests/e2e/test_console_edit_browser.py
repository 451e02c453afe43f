"""Edit and retry in a real browser (headless Chromium) against a real worker, broker and store:
an OwnerChanged the worker dead-lettered for a missing partner_contact is edited in the
console's editor, refused by the model first, then accepted; the copy is confirmed, the original
resolved with its before and after, the audit names the edit, and the worker takes the copy.
The run saves the editor's screenshot under docs/images/, which docs/console.md shows."""

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By

from support.client import Client
from support.console import OPERATOR, ConsoleProcess, console_env, users_file
from support.messages import owner_changed
from support.polling import wait_until
from tests.e2e.conftest import StartWorker
from tests.e2e.test_console_browser import (  # the browser and its helpers, as the console's other browser tests use them
    OpenBrowser,
    Scene,
    assert_no_browser_errors,
    browsers,
    chromium_paths,
    shot,
    sign_in,
    text,
    until,
)
from worker.dead_letters.records import DeadLetterRecords
from worker.store import open_store

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here
__all__ = ["browsers", "chromium_paths"]  # fixtures, used by name


@pytest.fixture
def scene(amqp_url: str, tmp_path: Path, start_worker: StartWorker, client: Client) -> Iterator[Scene]:
    """A worker that dead-letters into its store, and the console over them with editing on for
    OwnerChanged."""
    start_worker()
    store_url = f"sqlite:///{tmp_path / 'renewals.db'}"
    env = console_env(
        store_url,
        amqp_url,
        users_file(tmp_path),
        RENEWALS_DLQ_EDIT_ENABLED="true",
        RENEWALS_DLQ_EDIT_TYPES="OwnerChanged",
    )
    console = ConsoleProcess(env, tmp_path / "console.log")
    console.start()
    yield Scene(console, DeadLetterRecords(open_store(store_url)), client)
    console.stop()
    errors = [
        line for line in console.log().splitlines() if '"level": "error"' in line or "Traceback" in line
    ]
    assert not errors, "the console logged errors:\n" + "\n".join(errors)


def typed(browser: Chrome, document: dict[str, object]) -> None:
    """Put the document in the editor as a person would leave it (CodeMirror's own API)."""
    browser.execute_script(
        "document.querySelector('.CodeMirror').CodeMirror.setValue(arguments[0])",
        json.dumps(document, indent=2),
    )


def test_an_edit_refused_by_the_model_then_accepted_resolves_the_original(
    scene: Scene, browsers: OpenBrowser
) -> None:
    """The editor refuses an unknown owner with the model's error and sends nothing; the fixed
    body shows its difference, is sent, and the letter is then replayed with its edit's before
    and after, the audit has the edit, and the worker took the copy (the owner is set)."""
    broken = owner_changed("partner", "p-edit", id="evt-edit-1")
    scene.client.publish([broken])
    wait_until(lambda: scene.records.count() >= 1, what="the dead letter in the store", timeout=30)
    letter_id = scene.records.page().letters[0].id
    browser = browsers()
    sign_in(browser, scene, OPERATOR)
    browser.get(f"{scene.console.url}/letters/{letter_id}")
    browser.find_element(By.ID, "edit-and-retry").click()
    until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, ".CodeMirror"), "the editor")
    assert "well-formed" in text(browser, "json-status")
    assert_no_browser_errors(browser)  # CodeMirror and the editor's script loaded under the CSP

    typed(browser, {**broken, "data": {**broken["data"], "owner": "someone"}})
    browser.find_element(By.ID, "edit-preview").click()
    until(browser, lambda b: "data.owner" in text(b, "edit-errors"), "the model's refusal")
    assert "Input should be 'platform', 'partner' or 'default'" in text(browser, "edit-errors")
    assert browser.find_elements(By.ID, "edit-send") == []
    shot(browser, "edit-refused")
    refused = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert [message.split(" - ")[1] for message in refused] == [
        "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    ]  # the refusal's own status, and nothing else
    assert scene.records.get(letter_id).summary.status == "new"  # type: ignore[union-attr]

    fixed = {**broken, "data": {**broken["data"], "partner_contact": {"email": "pat@partner.example"}}}
    typed(browser, fixed)
    browser.find_element(By.ID, "edit-preview").click()
    until(browser, lambda b: '+    "partner_contact": {' in text(b, "edit-diff"), "the difference")
    shot(browser, "edit")
    browser.find_element(By.ID, "edit-send").click()

    until(browser, lambda b: text(b, "status") == "replayed", "the original resolved")
    assert "edited" in text(browser, "history")
    edit_record = browser.find_element(By.CSS_SELECTOR, "pre.edit-diff").text
    assert '+    "partner_contact": {' in edit_record and '"owner": "partner"' in edit_record
    browser.execute_script("document.querySelector('pre.edit-diff').scrollIntoView({block: 'center'})")
    shot(browser, "edited-letter")
    [record] = scene.records.edits(letter_id)
    assert json.loads(record.body_after) == fixed and json.loads(record.body_before) == broken

    browser.get(f"{scene.console.url}/audit")
    until(
        browser, lambda b: record.operation_id in b.find_element(By.TAG_NAME, "main").text, "the audit's edit"
    )
    browser.get(f"{scene.console.url}/owners?partner=p-edit")
    until(browser, lambda b: "pat@partner.example" in text(b, "owners-output"), "the worker took the copy")
    assert scene.records.count() == 0  # the copy did not fail again
    assert_no_browser_errors(browser)
