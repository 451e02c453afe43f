"""Each kind of ledger decision said in the domain's words (docs/domain.md), and owner changes as
before → after with whether they won; no store needed."""

from typing import Any

import pytest

from support.ledger_rows import change, reminder
from worker.ledger.questions import OwnerChange, ReminderRow
from worker.ledger.words import change_dict, decision, delivery, reminder_dict


def row(**fields: Any) -> ReminderRow:
    return ReminderRow(seq=1, **reminder(**fields))


def owner_change(**fields: Any) -> OwnerChange:
    values = change(**fields)
    return OwnerChange(seq=1, **{**values, "won": bool(values["won"])})


SINCE = "since 2026-09-01 09:00 UTC (event e-17)"
NO_ADDRESSES: dict[str, Any] = {"to_address": None, "cc_address": None, "notification_id": None}


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (  # rule row 1: platform, contact set, decision maker known
            {},
            f"platform default of acme {SINCE}: to the decision maker dora@globex.example, copy alice@acme.example",
        ),
        (  # rule row 2: platform, no contact
            {"rule_row": 2, "cc_address": None},
            f"platform default of acme {SINCE}: to the decision maker dora@globex.example",
        ),
        (  # rule row 3: platform, contact set, no decision maker: the fallback
            {
                "rule_row": 3,
                "to_address": "alice@acme.example",
                "cc_address": None,
                "decision_maker": None,
                "fallback": "decision_maker_missing",
            },
            f"platform default of acme {SINCE}: to the partner contact alice@acme.example"
            " (no decision maker known, so the partner contact stands in)",
        ),
        (  # rule row 5: partner owns it, through a client override
            {
                "rule_row": 5,
                "owner": "partner",
                "owner_scope": "client",
                "resolved_from": "client_override",
                "owner_event_id": "e-9",
                "to_address": "alice@acme.example",
                "cc_address": None,
            },
            "partner override for globex at acme since 2026-09-01 09:00 UTC (event e-9):"
            " to the partner contact alice@acme.example",
        ),
        (  # no setting anywhere: the system default
            {
                "rule_row": 2,
                "resolved_from": "system_default",
                "owner_scope": "default",
                "owner_event_id": None,
                "owner_changed_at_us": None,
                "cc_address": None,
            },
            "system default (platform): to the decision maker dora@globex.example",
        ),
        (  # a replay of a dead letter that was notified this time
            {"letter_id": 42, "replay_operation": "op-7a"},
            f"platform default of acme {SINCE}: to the decision maker dora@globex.example,"
            " copy alice@acme.example; replayed from dead letter 42 by replay op-7a",
        ),
    ],
)
def test_a_notified_reminder_says_the_setting_and_whom_it_went_to(fields: dict[str, Any], words: str) -> None:
    """Each rule-table row, the system default and a replay read as the domain says them."""
    assert decision(row(**fields)) == words


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        (
            {
                "reason": "partner_handles",
                "owner": "partner",
                "resolved_from": "client_override",
                "owner_event_id": "e-9",
            },
            "no notification: the partner handles it"
            " (partner override for globex at acme since 2026-09-01 09:00 UTC (event e-9))",
        ),
        (
            {"reason": "setting"},
            f"no notification: a setting says not to send it (platform default of acme {SINCE})",
        ),
        (
            {"reason": "duplicate", "notification_id": "n-1"},
            "no notification: it repeats a reminder already handled (notification n-1)",
        ),
        (
            {"reason": "dead_letter", "letter_id": 42, "detail": '{"reason": "no_recipient"}'},
            f"no notification: it was dead-lettered as no_recipient (dead letter 42) (platform default of acme {SINCE})",
        ),
        (
            {"reason": "no_recipient", "owner": None},
            "no notification: nobody to address (no partner contact, no decision maker known)",
        ),
        ({"reason": "a new reason", "owner": None}, "no notification: a new reason"),
    ],
)
def test_a_reminder_without_a_notification_says_why(fields: dict[str, Any], words: str) -> None:
    """Each reason a reminder caused no notification reads in words, with the setting where it decided."""
    fields = {**NO_ADDRESSES, "rule_row": None, "outcome": "no_notification", **fields}
    assert decision(row(**fields)) == words


def test_the_delivery_says_confirmed_published_or_not_yet() -> None:
    """A notification is confirmed, published but unconfirmed, or not yet published; none is '-'."""
    assert delivery(row()) == "confirmed 2026-10-01 09:00 UTC"
    assert delivery(row(confirmed_at_us=None)) == "published 2026-10-01 09:00 UTC, not confirmed"
    assert delivery(row(confirmed_at_us=None, published_at_us=None)) == "not yet published"
    assert delivery(row(outcome="no_notification", reason="duplicate", notification_id=None)) == "-"


def test_the_json_of_a_reminder_has_its_stable_shape() -> None:
    """Every documented key, times in ISO 8601 UTC, the detail read as JSON (text that is not JSON kept as text)."""
    found = reminder_dict(row(detail='{"reason": "no_recipient"}'))
    assert list(found) == [
        "seq", "event_id", "partner_id", "client_id", "renewal_date", "days_until_renewal", "handled_at",
        "outcome", "reason", "decision", "rule_row", "resolved_from", "fallback", "to", "cc", "owner",
        "decision_maker", "notification", "letter_id", "replay_operation", "detail",
    ]  # fmt: skip
    assert found["handled_at"] == "2026-10-01T09:00:00+00:00"
    assert found["owner"] == {
        "owner": "platform",
        "scope": "partner",
        "event_id": "e-17",
        "changed_at": "2026-09-01T09:00:00+00:00",
    }
    assert found["decision_maker"] == {"email": "dora@globex.example", "event_id": "evt-r0"}
    assert found["detail"] == {"reason": "no_recipient"}
    assert reminder_dict(row(detail="not json"))["detail"] == "not json"


def test_an_owner_change_says_before_after_and_whom_it_lost_to() -> None:
    """A won change, a lost one naming the newer event, and a cleared override, in words and JSON."""
    won = change_dict(owner_change(owner_before="platform", contact_before=None))
    assert won["change"] == "platform → platform with contact alice@acme.example" and won["outcome"] == "won"
    assert won["scope"] == "partner" and won["client_id"] is None
    lost = change_dict(owner_change(client_id="globex", won=0, lost_to_event_id="e-18"))
    assert lost["outcome"] == "lost to event e-18" and lost["won"] is False and lost["client_id"] == "globex"
    cleared = change_dict(
        owner_change(
            client_id="globex",
            owner_before="partner",
            contact_before="alice@acme.example",
            owner_after="default",
            contact_after=None,
        )
    )
    assert (
        cleared["change"] == "partner with contact alice@acme.example → cleared (the partner default applies)"
    )
    assert cleared["changed_at"] == "2026-10-01T09:00:00+00:00"
