"""The console telling the truth, in a real browser (headless Chromium through Selenium) against
the real broker and store with no worker running: the health strip red, a replay's preview
warning and refusing to go on until "replay anyway" is ticked; and the lists of daily use: the
trend as an inline SVG with a value per hour, totals, several statuses, previous and next, a
history that starts with "received", and a list that refreshes itself but holds still while
letters are ticked. The run saves the screenshots docs/console.md shows."""

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from selenium.webdriver import Chrome
from selenium.webdriver.common.by import By

from support.console import OPERATOR, VIEWER, ConsoleProcess, console_env, users_file
from support.letters import new_letter, spread
from tests.e2e import test_console_browser as shared
from tests.e2e.commands import ok, renewals
from tests.e2e.test_console_browser import OpenBrowser, assert_no_browser_errors, shot, text, until
from worker.dead_letters.records import DeadLetterRecords
from worker.settings import Settings
from worker.store import open_store

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here

REFRESH = 15  # seconds between two refreshes of a list (the templates' hx-trigger)

chromium_paths = shared.chromium_paths  # the browser fixtures, shared
browsers = shared.browsers


@pytest.fixture
def stopped(amqp_url: str, tmp_path: Path) -> Iterator[tuple[ConsoleProcess, DeadLetterRecords]]:
    """The topology a worker declared, the worker gone, letters of the last day in the store, a console."""
    ok(renewals(amqp_url, "topology", "--declare"))
    store_url = f"sqlite:///{tmp_path / 'renewals.db'}"
    store = open_store(store_url)
    store.migrate()
    records = DeadLetterRecords(store)
    now = datetime.now(UTC)
    for hours_ago, count in ((20, 2), (14, 5), (9, 3), (5, 8), (2, 4), (1, 6), (0, 2)):
        at = now - timedelta(hours=hours_ago, minutes=1 if hours_ago else 0)
        records.insert(spread(count, start=at, every=timedelta(seconds=1)), at=at)
    console = ConsoleProcess(console_env(store_url, amqp_url, users_file(tmp_path)), tmp_path / "console.log")
    console.start()
    yield console, records
    console.stop()
    errors = [
        line for line in console.log().splitlines() if '"level": "error"' in line or "Traceback" in line
    ]
    assert not errors, "the console logged errors:\n" + "\n".join(errors)


def sign_in(browser: Chrome, console: ConsoleProcess, user: tuple[str, str]) -> None:
    browser.get(console.url + "/login")
    browser.find_element(By.ID, "username").send_keys(user[0])
    browser.find_element(By.ID, "password").send_keys(user[1])
    browser.find_element(By.ID, "sign-in").click()
    until(browser, lambda b: user[0] in text(b, "who"), f"{user[0]} signed in")


def tick(browser: Chrome, selector: str) -> None:
    """Tick a letter's box and see it ticked, as a person would: a click can miss while htmx
    swaps the health strip above the list and the page shifts under the pointer."""

    def ticked(b: Chrome) -> bool:
        if not b.find_element(By.CSS_SELECTOR, selector).is_selected():
            b.find_element(By.CSS_SELECTOR, selector).click()
        return bool(b.find_element(By.CSS_SELECTOR, selector).is_selected())

    until(browser, ticked, "the letter ticked", timeout=10)


def test_with_the_worker_stopped_the_strip_is_red_and_a_replay_asks_to_confirm(
    stopped: tuple[ConsoleProcess, DeadLetterRecords], browsers: OpenBrowser
) -> None:
    """Red "NOT CONSUMING" naming the queue; the preview warns, Replay does nothing until "replay anyway"
    is ticked, then the replay runs and its letter waits in the queue."""
    console, records = stopped
    queue = Settings().queue
    browser = browsers()
    sign_in(browser, console, OPERATOR)
    until(browser, lambda b: text(b, "readiness") == "NOT CONSUMING", "the red strip")
    assert text(browser, "not-consuming").startswith(f"no worker consumes {queue} (0 consumers)")
    assert "bad" in (browser.find_element(By.ID, "consumers").get_attribute("class") or "")
    shot(browser, "health-red")

    browser.get(console.url + "/letters")
    newest = records.page(newest_first=True, limit=1).letters[0]
    tick(browser, f'input[name="letter"][value="{newest.id}"]')
    browser.find_element(By.ID, "act-checked").click()
    until(browser, lambda b: b.find_elements(By.ID, "no-consumer-warning"), "the preview's warning")
    assert f"no worker consumes {queue}" in text(browser, "no-consumer-warning")
    shot(browser, "replay-no-consumer")
    browser.find_element(By.ID, "confirm").click()
    time.sleep(0.5)
    assert browser.current_url.endswith("/actions/preview")  # the form asks for the box first
    assert browser.execute_script(
        "return document.getElementById('confirm-no-consumer').validity.valueMissing"
    )
    browser.find_element(By.ID, "confirm-no-consumer").click()
    browser.find_element(By.ID, "confirm").click()
    until(browser, lambda b: "/replays/" in b.current_url, "the replay's page")
    until(browser, lambda b: records.get(newest.id).summary.status == "replayed", "the letter replayed")  # type: ignore[union-attr]
    browser.get(console.url + "/letters")
    until(browser, lambda b: "1 waiting" in text(b, "health"), "the replayed letter waiting in the queue")
    assert_no_browser_errors(browser)


def test_the_lists_of_daily_use_in_the_browser(
    stopped: tuple[ConsoleProcess, DeadLetterRecords], browsers: OpenBrowser
) -> None:
    """The trend's bars carry their hour and count; the letters list has totals, several statuses,
    refreshes by itself and holds still while a letter is ticked; a letter has previous and next
    and its history starts with "received"."""
    console, records = stopped
    total = records.count()
    browser = browsers()
    sign_in(browser, console, VIEWER)
    charts = browser.find_elements(By.CSS_SELECTOR, "svg.trend-chart")
    assert len(charts) == 3
    titles = [
        t.get_attribute("textContent") for t in charts[0].find_elements(By.CSS_SELECTOR, "g.hour > title")
    ]
    assert len(titles) == 24 and all(" UTC: " in (t or "") for t in titles)
    shown = sum(
        int((t or "").rsplit(": ", 1)[1].split()[0])
        for c in charts
        for t in [x.get_attribute("textContent") for x in c.find_elements(By.CSS_SELECTOR, "g.hour > title")]
    )
    assert shown == total
    shot(browser, "groups-trend")

    browser.get(console.url + "/letters?status=new&status=archived")
    assert text(browser, "totals").startswith(f"1\u2013{total} of {total}")
    assert browser.find_element(By.ID, "status-archived").is_selected()
    shot(browser, "letters-totals")
    records.insert([new_letter(event_id="evt-arrived-later")])
    until(
        browser,
        lambda b: text(b, "totals").startswith(f"1\u2013{total + 1} of {total + 1}"),
        "the list refreshed",
        timeout=REFRESH + 10,
    )
    browser.find_element(By.CSS_SELECTOR, 'input[name="letter"]').click() if browser.find_elements(
        By.CSS_SELECTOR, 'input[name="letter"]'
    ) else None

    browser.find_elements(By.CSS_SELECTOR, "#letters tr.letter td.num a")[1].click()
    until(browser, lambda b: b.find_elements(By.ID, "history"), "a letter's page")
    rows = browser.find_elements(By.CSS_SELECTOR, "#history tbody tr")
    assert rows[0].get_attribute("class") == "history-received"
    assert browser.find_elements(By.ID, "previous-letter") and browser.find_elements(By.ID, "next-letter")
    here = browser.current_url
    browser.find_element(By.ID, "next-letter").click()
    until(browser, lambda b: b.current_url != here, "the next letter")
    assert "status=archived" in browser.current_url  # the list's filters follow
    shot(browser, "letter-neighbours")
    assert_no_browser_errors(browser)


def held_then_refreshed(browser: Chrome, total: int) -> None:
    """The letter is still ticked and the list still shows `total` letters (one more has come
    since); unticked, the list refreshes and shows it."""
    assert browser.find_element(By.CSS_SELECTOR, 'input[name="letter"]').is_selected()
    assert f"of {total} " in text(browser, "totals")
    browser.find_element(By.CSS_SELECTOR, 'input[name="letter"]').click()
    until(
        browser,
        lambda b: f"of {total + 1} " in text(b, "totals"),
        "the list refreshed once unticked",
        timeout=REFRESH + 10,
    )
    assert_no_browser_errors(browser)


def test_a_list_holds_still_while_a_letter_is_ticked(
    stopped: tuple[ConsoleProcess, DeadLetterRecords], browsers: OpenBrowser
) -> None:
    """An operator ticks a letter: past the refresh interval the tick is still there and the new letter not yet
    shown; unticked, the list refreshes and shows it."""
    console, records = stopped
    total = records.count()
    browser = browsers()
    sign_in(browser, console, OPERATOR)
    browser.get(console.url + "/letters")
    tick(browser, 'input[name="letter"]')
    records.insert([new_letter(event_id="evt-while-ticked")])
    time.sleep(REFRESH + 3)
    assert text(browser, "totals").endswith(
        f"of {total} (newest first; refreshed every 15 s unless letters are ticked)"
    )
    held_then_refreshed(browser, total)


def test_a_refresh_answered_after_a_letter_is_ticked_leaves_the_list_as_it_is(
    stopped: tuple[ConsoleProcess, DeadLetterRecords], browsers: OpenBrowser
) -> None:
    """A refresh that went out while nothing was ticked, and came back after the operator ticked a
    letter, is dropped rather than swapped in over the tick. The page is made to read the list's
    next answer six seconds late, so that it certainly comes back after the tick."""
    console, records = stopped
    total = records.count()
    browser = browsers()
    sign_in(browser, console, OPERATOR)
    browser.get(console.url + "/letters")
    browser.execute_script(SLOW_LIST_ANSWER)
    records.insert([new_letter(event_id="evt-while-in-flight")])
    until(
        browser,
        lambda b: b.execute_script("return window.listRefresh") == "sent",
        "a refresh",
        timeout=REFRESH + 5,
    )
    tick(browser, 'input[name="letter"]')
    assert browser.execute_script("return window.listRefresh") == "sent"  # not yet answered
    until(
        browser,
        lambda b: b.execute_script("return window.listRefresh") == "read",
        "its answer read",
        timeout=15,
    )
    time.sleep(0.5)  # htmx swaps within the same task; settling takes 20 ms
    held_then_refreshed(browser, total)


SLOW_LIST_ANSWER = """
const open = XMLHttpRequest.prototype.open, send = XMLHttpRequest.prototype.send;
XMLHttpRequest.prototype.open = function (method, url) {
  this.listRefresh = String(url).includes("/letters");
  return open.apply(this, arguments);
};
XMLHttpRequest.prototype.send = function () {
  if (this.listRefresh && !window.listRefresh) {
    window.listRefresh = "sent";
    const read = this.onload, xhr = this;
    this.onload = function (event) {
      setTimeout(function () { read.call(xhr, event); window.listRefresh = "read"; }, 6000);
    };
  }
  return send.apply(this, arguments);
};
"""
