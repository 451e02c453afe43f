"""Replays that close the loop, in the real browser (headless Chromium) against a real worker,
broker and store: a canary whose letter still fails pauses the replay and links the letter to the
new one it came back as, both ways; once the cause is fixed, the resumed replay's letters
resolve, and its page counts resolved, failed again and pending. Screenshots go to docs/images/."""

import pytest
from selenium.webdriver.common.by import By

from support.console import OPERATOR
from support.messages import contact, owner_changed, renewal
from tests.e2e.test_console_browser import (  # the console-in-a-browser scene and its helpers
    OpenBrowser,
    Scene,
    assert_no_browser_errors,
    browsers,
    chromium_paths,
    letters_arrive,
    press,
    scene,
    shot,
    sign_in,
    status,
    text,
    until,
)

pytestmark = pytest.mark.any_broker  # the broker's version plays no part here
__all__ = ["browsers", "chromium_paths", "scene"]  # fixtures, used by name


def test_a_canary_that_stops_links_both_ways_and_the_resumed_replay_resolves(
    scene: Scene, browsers: OpenBrowser
) -> None:
    """Three letters nobody can be told about; a replay with a canary of one: its letter fails
    again, the replay pauses saying so, the letter links the new one and back, the other two are
    untouched. The partner's contact fixed, Resume: the two resolve, and the page says 2
    resolved, 1 failed again, 0 pending."""
    scene.client.publish([renewal(f"c-{n}", "p-gamma", id=f"evt-g{n}") for n in range(3)])
    letters_arrive(scene, 3)
    browser = browsers()
    sign_in(browser, scene, OPERATOR)
    browser.get(scene.console.url + "/")
    browser.find_element(By.CSS_SELECTOR, "#groups tr.group button.replay").click()
    until(browser, lambda b: b.find_elements(By.ID, "canary"), "the replay's preview")
    browser.find_element(By.ID, "canary").send_keys("1")
    browser.find_element(By.ID, "confirm").click()
    until(browser, lambda b: status(b) == "paused", "the canary to stop the replay")
    assert "Paused: canary: 1 of 1 failed again" in text(browser, "pause-reason")
    assert "failed" in text(browser, "replay-canary")
    [operation] = scene.records.operations()
    assert (operation.replayed, operation.failed_again) == (1, 1)
    shot(browser, "replay-canary-stopped")

    link = browser.find_element(By.CSS_SELECTOR, "#failed-again td a")
    old_id = int(link.text.lstrip("#"))
    link.click()
    until(browser, lambda b: b.find_elements(By.CSS_SELECTOR, "a.linked-letter"), "the letter's link")
    new_link = browser.find_element(By.CSS_SELECTOR, "tr.history-failed_again a.linked-letter")
    new_id = int(new_link.text.lstrip("#"))
    new_link.click()
    until(
        browser,
        lambda b: b.find_elements(By.CSS_SELECTOR, "tr.history-replay_of a.linked-letter"),
        "the link back",
    )
    assert browser.find_element(By.CSS_SELECTOR, "tr.history-replay_of a.linked-letter").text == f"#{old_id}"
    assert scene.records.get(new_id) is not None
    shot(browser, "letter-failed-again")
    untouched = [scene.records.get(letter_id) for letter_id in range(1, 4) if letter_id != old_id]
    assert [letter.summary.status for letter in untouched if letter] == ["new", "new"]

    fix = contact("gail", "gamma-partner.example")
    scene.client.publish([owner_changed("platform", "p-gamma", partner_contact=fix, id="evt-g-fix")])
    browser.get(f"{scene.console.url}/replays/{operation.id}")
    press(browser, "resume-replay")
    until(
        browser,
        lambda b: status(b) == "finished" and "0 still pending" in text(b, "replay-outcomes"),
        "the resumed replay's letters to resolve",
        timeout=60,
    )
    assert "2 resolved, 1 failed again, 0 still pending" in text(browser, "replay-outcomes")
    assert_no_browser_errors(browser)
    shot(browser, "replay-outcomes")
