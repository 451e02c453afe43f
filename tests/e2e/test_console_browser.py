"""The console in a real browser (headless Chromium through Selenium) against a real worker,
broker and store: a viewer reads and is refused, an operator replays a group after a dry run
and the notifications arrive, and a long replay is cancelled. The run saves screenshots of the
main pages under docs/images/, which the README shows."""

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from support.browser import BrowserMissing, chromium, ensure_chromium
from support.client import Client
from support.console import OPERATOR, VIEWER, ConsoleProcess, console_env, users_file
from support.ledger_rows import sample, write
from support.messages import contact, owner_changed, renewal
from support.polling import wait_until
from tests.e2e.commands import ok, renewals
from tests.e2e.conftest import StartWorker
from worker.dead_letters.records import DeadLetterRecords
from worker.store import open_store

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here

IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
OpenBrowser = Callable[[], Chrome]


@dataclass
class Scene:
    console: ConsoleProcess
    records: DeadLetterRecords
    client: Client


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    try:
        return ensure_chromium()
    except BrowserMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def browsers(chromium_paths: tuple[str, str], tmp_path: Path) -> Iterator[OpenBrowser]:
    opened: list[Chrome] = []

    def open_browser() -> Chrome:
        opened.append(chromium(*chromium_paths, tmp_path / f"profile-{len(opened)}"))
        return opened[-1]

    yield open_browser
    for browser in opened:
        browser.quit()


@pytest.fixture
def scene(amqp_url: str, tmp_path: Path, start_worker: StartWorker, client: Client) -> Iterator[Scene]:
    """A worker that dead-letters into its store, and the console over the same store and broker."""
    start_worker()
    store_url = f"sqlite:///{tmp_path / 'renewals.db'}"
    console = ConsoleProcess(console_env(store_url, amqp_url, users_file(tmp_path)), tmp_path / "console.log")
    console.start()
    records = DeadLetterRecords(open_store(store_url))
    yield Scene(console, records, client)
    console.stop()
    errors = [
        line for line in console.log().splitlines() if '"level": "error"' in line or "Traceback" in line
    ]
    assert not errors, "the console logged errors:\n" + "\n".join(errors)


def letters_arrive(scene: Scene, count: int) -> None:
    wait_until(lambda: scene.records.count() >= count, what=f"{count} dead letters in the store", timeout=30)


def sign_in(browser: Chrome, scene: Scene, user: tuple[str, str]) -> None:
    sign_in_at(browser, scene.console, user)


def sign_in_at(browser: Chrome, console: ConsoleProcess, user: tuple[str, str]) -> None:
    browser.get(console.url + "/login")
    browser.find_element(By.ID, "username").send_keys(user[0])
    browser.find_element(By.ID, "password").send_keys(user[1])
    browser.find_element(By.ID, "sign-in").click()
    until(browser, lambda b: user[0] in text(b, "who"), f"{user[0]} signed in")


def until(browser: Chrome, condition: Callable[[Chrome], object], what: str, timeout: float = 30) -> None:
    """Wait for `condition`; on a timeout say what the page shows instead."""
    try:
        # htmx swaps the progress every second: an element read as it goes is simply read again.
        WebDriverWait(
            browser, timeout, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
        ).until(condition)
    except TimeoutException:
        shown = browser.find_element(By.TAG_NAME, "body").text[:2000]
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}; {browser.current_url} shows:\n{shown}"
        ) from None


def text(browser: Chrome, element_id: str) -> str:
    found = browser.find_elements(By.ID, element_id)
    return found[0].text if found else ""


def shot(browser: Chrome, name: str) -> None:
    IMAGES.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(IMAGES / f"console-{name}.png"))


def health_shown(browser: Chrome) -> None:
    """The health strip has loaded (ready, not ready, or not consuming: whatever it says)."""
    until(browser, lambda b: text(b, "readiness").strip() != "", "the health strip")


def test_a_viewer_sees_the_groups_searches_opens_a_letter_and_is_refused_an_action(
    scene: Scene, browsers: OpenBrowser
) -> None:
    """Signed in as a viewer: groups with counts, a search, a letter's page, the owner lookup;
    no action buttons, and an action forged in the page is refused by the server."""
    scene.client.publish(
        [
            *(renewal(f"c-{n}", "p-acme", id=f"evt-7f3{n}") for n in range(1, 4)),
            owner_changed("partner", "p-acme", id="evt-8b01"),
        ]
    )
    letters_arrive(scene, 4)
    browser = browsers()
    sign_in(browser, scene, VIEWER)
    health_shown(browser)
    counts = sorted(
        int(cell.text) for cell in browser.find_elements(By.CSS_SELECTOR, "#groups tr.group td.num")
    )
    assert counts == [1, 3]
    assert browser.find_elements(By.CSS_SELECTOR, "button.replay") == []
    shot(browser, "groups")

    browser.get(scene.console.url + "/letters")
    browser.find_element(By.ID, "search").send_keys("evt-7f32")
    browser.find_element(By.ID, "apply-filters").click()
    until(
        browser,
        lambda b: len(b.find_elements(By.CSS_SELECTOR, "#letters tr.letter")) == 1,
        "one letter found",
    )
    shot(browser, "letters")
    browser.find_element(By.CSS_SELECTOR, "#letters tr.letter td.id a").click()
    until(browser, lambda b: text(b, "event-id") == "evt-7f32", "the letter's page")
    assert '"client_id": "c-2"' in text(browser, "body")
    assert "no_recipient" in text(browser, "headers")
    shot(browser, "letter")

    browser.get(scene.console.url + "/owners?partner=p-acme&client=c-2")
    until(browser, lambda b: "NO RECIPIENT" in text(b, "owners-output"), "the owner lookup")
    shot(browser, "owners")

    forged = """
        const form = document.createElement('form');
        form.method = 'post'; form.action = '/actions/confirm';
        const fields = {action: 'purge', all: 'true',
                        csrf_token: document.querySelector('input[name=csrf_token]').value};
        for (const [name, value] of Object.entries(fields)) {
            const input = document.createElement('input');
            input.type = 'hidden'; input.name = name; input.value = value; form.appendChild(input);
        }
        document.body.appendChild(form); form.submit();
    """
    assert_no_browser_errors(browser)
    browser.execute_script(forged)
    until(browser, lambda b: "needs the operator role" in text(b, "problem"), "the refusal")
    assert scene.records.count() == 4


def test_a_letter_carrying_script_shows_it_as_text_in_the_browser(
    scene: Scene, browsers: OpenBrowser
) -> None:
    """Script in a letter's id, message id, headers and body, through the worker into the store:
    the browser shows it as text, runs none of it, and the CSP had nothing to block."""
    hostile = renewal("c-1", "p-acme", id='<script>alert("id")</script>')
    hostile["data"]["note"] = '</pre><script>alert("body")</script><img src=x onerror=alert("img")>'
    scene.client.publish(
        [hostile],
        message_id="<img src=x onerror=alert('mid')>",
        headers={"x-evil": "<svg onload=alert('h')>"},
    )
    letters_arrive(scene, 1)
    browser = browsers()
    sign_in(browser, scene, OPERATOR)
    for path in ("/", "/letters?text=script", f"/letters/{scene.records.page().letters[0].id}"):
        browser.get(scene.console.url + path)
        health_shown(browser)
        scripts = browser.execute_script("return Array.from(document.scripts, s => s.getAttribute('src'))")
        assert scripts == ["/static/htmx.min.js", "/static/console.js"]  # ours, nothing else
        assert browser.find_elements(By.CSS_SELECTOR, "main img, main svg:not(.trend-chart)") == []
    assert '<script>alert("id")</script>' in text(browser, "event-id")
    assert '</pre><script>alert(\\"body\\")</script>' in text(browser, "body")
    assert "<svg onload=alert('h')>" in text(browser, "headers")
    assert_no_browser_errors(browser)  # an alert() would have failed every call above, a blocked script here
    shot(browser, "hostile-letter")


def test_an_operator_replays_a_group_after_a_dry_run_and_the_notifications_arrive(
    scene: Scene, browsers: OpenBrowser
) -> None:
    """Billing fixes the partner's contact; the operator previews the group's replay (nothing
    changes), confirms it, watches the progress, and the three notifications arrive."""
    notifications = scene.client.observe()
    scene.client.publish([renewal(f"c-{n}", "p-acme", id=f"evt-7f3{n}") for n in range(1, 4)])
    scene.client.publish([owner_changed("partner", "p-acme", id="evt-8b01")])
    letters_arrive(scene, 4)
    fix = contact("alice", "acme-partner.example")
    scene.client.publish([owner_changed("platform", "p-acme", partner_contact=fix, id="evt-8a01")])

    browser = browsers()
    sign_in(browser, scene, OPERATOR)
    browser.get(scene.console.url + "/owners?partner=p-acme&client=c-1")
    until(
        browser,
        lambda b: "alice@acme-partner.example" in text(b, "owners-output"),
        "the fix in the projection",
    )

    browser.get(scene.console.url + "/")
    health_shown(browser)
    group = next(
        row
        for row in browser.find_elements(By.CSS_SELECTOR, "#groups tr.group")
        if "no_recipient" in row.text
    )
    group.find_element(By.CSS_SELECTOR, "button.replay").click()
    until(
        browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#plans tr.plan-replay")) == 3, "the dry run"
    )
    assert "Selected: 3 letters" in text(browser, "preview-summary")
    shot(browser, "replay-preview")
    assert scene.client.quiet(notifications) and scene.records.count() == 4

    browser.find_element(By.ID, "confirm").click()
    until(browser, lambda b: status(b) == "finished", "the replay to finish")
    assert "replayed 3, skipped 0, failed 0" in text(browser, "replay-counts")
    shot(browser, "replay")
    sent = scene.client.take(notifications, 3)
    assert sorted(_causation(body) for _, _, body in sent) == ["evt-7f31", "evt-7f32", "evt-7f33"]
    assert scene.records.count() == 1  # the invalid OwnerChanged is left

    assert_no_browser_errors(browser)  # htmx polled the progress under the CSP
    browser.get(scene.console.url + "/audit")
    assert "replay" in text(browser, "audit") and OPERATOR[0] in text(browser, "audit")
    shot(browser, "audit")


def test_an_operator_cancels_a_long_replay_and_resumes_it(scene: Scene, browsers: OpenBrowser) -> None:
    """A replay of 30 letters at 2 a second is cancelled from its page after a few: it ends
    cancelled with the rest untried; resumed, it replays the rest and none twice."""
    scene.client.publish([renewal(f"c-{n}", "p-beta", id=f"evt-b{n:03d}") for n in range(30)])
    letters_arrive(scene, 30)
    # The partner's contact is fixed, so the copies resolve (letters failing again would brake it).
    fix = contact("bea", "beta-partner.example")
    scene.client.publish([owner_changed("platform", "p-beta", partner_contact=fix, id="evt-b-fix")])
    browser = browsers()
    sign_in(browser, scene, OPERATOR)
    browser.get(scene.console.url + "/")
    browser.find_element(By.CSS_SELECTOR, "#groups tr.group button.replay").click()
    until(browser, lambda b: b.find_elements(By.ID, "rate"), "the replay's preview")
    rate = browser.find_element(By.ID, "rate")
    rate.clear()
    rate.send_keys("2")
    browser.find_element(By.ID, "confirm").click()
    until(browser, lambda b: done(b) >= 2, "a few letters replayed")
    press(browser, "cancel-replay")
    until(browser, lambda b: status(b) == "cancelled", "the replay cancelled")
    shot(browser, "replay-cancelled")
    [operation] = scene.records.operations()
    assert operation.status == "cancelled" and 2 <= operation.done < operation.total == 30
    assert scene.records.count(operation.selection) == 30 - operation.replayed  # the rest still new

    press(browser, "resume-replay")
    until(browser, lambda b: status(b) == "finished", "the resumed replay to finish", timeout=60)
    [resumed] = scene.records.operations()
    assert (resumed.id, resumed.replayed, resumed.total) == (operation.id, 30, 30)
    assert scene.records.count(operation.selection) == 0


def test_an_operator_schedules_a_replay_and_cancels_it_while_it_waits(
    scene: Scene, browsers: OpenBrowser
) -> None:
    """A replay confirmed with At `+1h` is recorded scheduled, its page says when it is due and
    offers Cancel; cancelled, it ends cancelled with nothing sent and every letter still new."""
    scene.client.publish([renewal(f"c-{n}", "p-beta", id=f"evt-s{n:03d}") for n in range(3)])
    letters_arrive(scene, 3)
    browser = browsers()
    sign_in(browser, scene, OPERATOR)
    browser.get(scene.console.url + "/")
    browser.find_element(By.CSS_SELECTOR, "#groups tr.group button.replay").click()
    until(browser, lambda b: b.find_elements(By.ID, "at"), "the replay's preview with its At field")
    browser.find_element(By.ID, "at").send_keys("+1h")
    browser.find_element(By.ID, "confirm").click()
    until(browser, lambda b: status(b) == "scheduled", "the replay scheduled")
    assert "Scheduled for" in text(browser, "scheduled")
    shot(browser, "replay-scheduled")
    [operation] = scene.records.operations()
    assert operation.status == "scheduled" and operation.not_before is not None
    press(browser, "cancel-replay")
    until(browser, lambda b: status(b) == "cancelled", "the scheduled replay cancelled")
    [cancelled] = scene.records.operations()
    assert (cancelled.id, cancelled.status, cancelled.done) == (operation.id, "cancelled", 0)
    assert scene.records.count(operation.selection) == 3  # nothing was sent: every letter still new
    assert_no_browser_errors(browser)


def assert_no_browser_errors(browser: Chrome) -> None:
    """Nothing the browser refused or failed on: no CSP violation, no failed request, no script error."""
    errors = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def press(browser: Chrome, button_id: str) -> None:
    """Click a button inside the progress, which htmx may swap between finding and clicking."""
    until(browser, lambda b: b.find_element(By.ID, button_id).click() or True, f"a click on {button_id}")


def status(browser: Chrome) -> str:
    found = browser.find_elements(By.ID, "progress")
    return (found[0].get_attribute("data-status") or "") if found else ""


def done(browser: Chrome) -> int:
    counts = text(browser, "replay-counts")
    return int(counts.split(" ", 1)[0]) if counts else 0


def _causation(body: bytes) -> str:
    return str(json.loads(body)["data"]["causation_id"])


@pytest.fixture
def ledger_console(amqp_url: str, tmp_path: Path) -> Iterator[ConsoleProcess]:
    """The console over a store holding a month of acme's reminders and owner changes, on a
    vhost with the topology declared (the health strip reads it)."""
    ok(renewals(amqp_url, "topology", "--declare"))
    store_url = f"sqlite:///{tmp_path / 'renewals.db'}"
    store = open_store(store_url)
    store.migrate()
    reminders, changes = sample()
    write(store, "reminder_ledger", reminders)
    write(store, "owner_history", changes)
    store.close()
    console = ConsoleProcess(console_env(store_url, amqp_url, users_file(tmp_path)), tmp_path / "console.log")
    yield console.start()
    console.stop()


def test_a_viewer_searches_the_reminders_by_client_and_recipient(
    ledger_console: ConsoleProcess, browsers: OpenBrowser
) -> None:
    """The Reminders page from the nav: every reminder newest first, then a client's, then those
    a recipient got, each with its decision in words."""
    browser = browsers()
    sign_in_at(browser, ledger_console, VIEWER)
    browser.find_element(By.LINK_TEXT, "Reminders").click()
    until(
        browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#reminders tr.reminder")) == 5, "5 reminders"
    )
    browser.find_element(By.ID, "client").send_keys("globex")
    browser.find_element(By.ID, "search").click()
    until(
        browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#reminders tr.reminder")) == 3, "globex's 3"
    )
    decisions = [cell.text for cell in browser.find_elements(By.CSS_SELECTOR, "#reminders td.decision")]
    assert decisions[1] == (
        "partner override for globex at acme since 2026-10-06 09:00 UTC (event e-9):"
        " to the partner contact alice@acme.example"
    )
    assert decisions[2].endswith("to the decision maker dora@globex.example")
    browser.find_element(By.ID, "client").clear()
    browser.find_element(By.ID, "recipient").send_keys("alice@acme.example")
    browser.find_element(By.ID, "search").click()
    until(
        browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#reminders tr.reminder")) == 2, "alice's 2"
    )
    assert "replayed from dead letter 12" in browser.find_element(By.ID, "reminders").text
    browser.get(ledger_console.url + "/reminders")
    until(browser, lambda b: len(b.find_elements(By.CSS_SELECTOR, "#reminders tr.reminder")) == 5, "5 again")
    health_shown(browser)
    shot(browser, "reminders")
    assert_no_browser_errors(browser)
