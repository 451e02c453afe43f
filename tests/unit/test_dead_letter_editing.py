"""Edit and retry's rules that need no broker or store: which headers are locked, how the
editor's header rows become changes, the difference shown, and the two settings."""

import json

import pytest

from worker.console.editor import digest, form_changes
from worker.dead_letters.edit_diff import diff
from worker.dead_letters.guardrails import locked
from worker.settings import ConfigurationError, load_settings


@pytest.mark.parametrize(
    "name",
    [
        "x-error-reason",
        "x-original-exchange",
        "x-death",
        "x-delivery-count",
        "x-replay-count",
        "x-replay-of-letter",
        "x-replay-operation",
        "x-edited-from-message-id",
        "x-dead-letter-id",
        "x-first-death-queue",
        "CC",
        "BCC",
    ],
)
def test_the_worker_s_broker_s_replay_and_routing_headers_are_locked(name: str) -> None:
    """Every header of ours, the broker's, the replay links and CC/BCC are locked."""
    assert locked(name)


@pytest.mark.parametrize("name", ["tenant", "traceparent", "x-tenant", "cc-list"])
def test_headers_that_are_not_ours_may_change(name: str) -> None:
    """Upstream's headers, even x-prefixed ones that are not ours, may change."""
    assert not locked(name)


def test_editor_rows_become_changes_set_removed_or_left_alone() -> None:
    """A changed value sets it, an emptied value or a dropped row removes it, a new row adds
    it, and a header as it was (an integer shown as text) is left alone."""
    original = {"tenant": "eu-1", "count": 3, "gone": "x", "emptied": "y"}
    names = ["tenant", "count", "emptied", "added", ""]
    values = ["eu-2", "3", "", "new", "ignored"]
    assert form_changes(original, names, values) == {
        "tenant": "eu-2",
        "emptied": None,
        "added": "new",
        "gone": None,
    }


def test_the_preview_s_digest_names_the_body_and_the_changes() -> None:
    """Sending needs what was shown: another body or other changes give another digest."""
    shown = digest('{"a": 1}', {"tenant": "eu-2"})
    assert shown == digest('{"a": 1}', {"tenant": "eu-2"})
    assert shown != digest('{"a": 2}', {"tenant": "eu-2"})
    assert shown != digest('{"a": 1}', {"tenant": None})


def test_the_difference_shows_headers_then_the_body_indented() -> None:
    """Header lines first, then the body as indented JSON, as unified-diff lines."""
    before = json.dumps({"data": {"owner": "partner"}}).encode()
    after = json.dumps({"data": {"owner": "partner", "partner_contact": {"email": "p@x.example"}}}).encode()
    lines = diff(before, {"tenant": "eu-1"}, after, {"tenant": "eu-2"})
    assert lines[:2] == ["--- headers before", "+++ headers after"]
    assert "-tenant: eu-1" in lines and "+tenant: eu-2" in lines
    assert '+    "partner_contact": {' in lines and lines.index("--- body before") > lines.index(
        "+tenant: eu-2"
    )
    assert diff(before, {}, before, {}) == []


def test_the_types_setting_takes_a_list_and_refuses_an_unknown_type() -> None:
    """DLQ_EDIT_TYPES reads comma-separated or JSON lists of consumed types; another type is one
    line naming the setting; editing is off and no type listed by default."""
    assert load_settings(dlq_edit_types=" OwnerChanged,RenewalApproaching ").dlq_edit_types == (
        "OwnerChanged",
        "RenewalApproaching",
    )
    assert load_settings(dlq_edit_types='["OwnerChanged"]').dlq_edit_types == ("OwnerChanged",)
    defaults = load_settings()
    assert (defaults.dlq_edit_enabled, defaults.dlq_edit_types) == (False, ())
    with pytest.raises(
        ConfigurationError,
        match=r"^RENEWALS_DLQ_EDIT_TYPES=.*'NotificationRequested' is not an event type the worker consumes",
    ):
        load_settings(dlq_edit_types="NotificationRequested")
