"""The domain rules of docs/domain.md, against an in-memory projection: no broker, no database."""

from datetime import date

import pytest

from events import OwnerChanged, RenewalApproaching, parse
from handlers import (
    NoRecipient,
    ReminderKey,
    SettingKey,
    notification_id_for,
    on_owner_changed,
    on_renewal_approaching,
)
from support.messages import contact, encode, owner_changed, renewal
from tests.fakes import InMemoryProjection

DORA = contact("dora", "client.example")
ALICE = contact("alice")
BOB = contact("bob")


def apply(projection: InMemoryProjection, *messages: dict) -> list[str]:
    outcomes = []
    for message in messages:
        event = parse(encode(message), "application/json")
        if isinstance(event, OwnerChanged):
            outcomes.append(on_owner_changed(event, projection=projection).outcome)
        else:
            assert isinstance(event, RenewalApproaching)
            outcomes.append(on_renewal_approaching(event, projection=projection).outcome)
    return outcomes


def notify(projection: InMemoryProjection, message: dict):
    event = parse(encode(message), "application/json")
    assert isinstance(event, RenewalApproaching)
    decision = on_renewal_approaching(event, projection=projection)
    return decision.notification


def emails(recipients) -> list[str]:
    return [r.email for r in recipients]


# --- the rule table, row by row -------------------------------------------------------


def test_row1_platform_with_contact_and_decision_maker_goes_to_both() -> None:
    """platform + contact + DM known: to DM, cc the contact, audience both."""
    p = InMemoryProjection()
    apply(p, owner_changed("platform", partner_contact=ALICE))
    n = notify(p, renewal(decision_maker=DORA))
    assert (emails(n.to), emails(n.cc), n.audience, n.fallback) == (
        ["dora@client.example"],
        ["alice@partner.example"],
        "both",
        None,
    )
    assert [r.role for r in n.to + n.cc] == ["decision_maker", "partner_contact"]
    assert (n.owner, n.resolved_from) == ("platform", "partner_default")


def test_row2_platform_without_contact_goes_to_the_decision_maker_only() -> None:
    """platform, no contact, DM known: to DM, nobody copied."""
    n = notify(InMemoryProjection(), renewal(decision_maker=DORA))
    assert (emails(n.to), emails(n.cc), n.audience, n.fallback) == (
        ["dora@client.example"],
        [],
        "decision_maker",
        None,
    )
    assert n.resolved_from == "system_default"


def test_row3_platform_with_contact_but_no_decision_maker_falls_back_to_the_contact() -> None:
    """platform + contact, DM unknown: to the contact, fallback decision_maker_missing."""
    p = InMemoryProjection()
    apply(p, owner_changed("platform", partner_contact=ALICE))
    n = notify(p, renewal())
    assert (emails(n.to), emails(n.cc), n.audience, n.fallback) == (
        ["alice@partner.example"],
        [],
        "partner_contact",
        "decision_maker_missing",
    )


def test_row4_platform_with_nobody_to_address_raises_no_recipient() -> None:
    """platform, no contact, no DM: NoRecipient, and nothing is claimed or remembered."""
    p = InMemoryProjection()
    with pytest.raises(NoRecipient) as caught:
        notify(p, renewal())
    assert caught.value.reason == "no_recipient"
    assert p.reminders == {}


def test_row5_partner_owner_goes_only_to_the_partner_contact() -> None:
    """partner owner: to the contact only, even when the DM is known."""
    p = InMemoryProjection()
    apply(p, owner_changed("partner", partner_contact=BOB))
    n = notify(p, renewal(decision_maker=DORA))
    assert (emails(n.to), emails(n.cc), n.audience, n.fallback, n.owner) == (
        ["bob@partner.example"],
        [],
        "partner_contact",
        None,
        "partner",
    )


# --- effective setting ----------------------------------------------------------------


def test_override_beats_default_and_is_complete_in_itself() -> None:
    """A per-client platform override without a contact copies nobody, whatever the default says."""
    p = InMemoryProjection()
    apply(p, owner_changed("partner", partner_contact=BOB), owner_changed("platform", client_id="c1"))
    n = notify(p, renewal("c1", decision_maker=DORA))
    assert (n.owner, n.resolved_from, emails(n.to), emails(n.cc)) == (
        "platform",
        "client_override",
        ["dora@client.example"],
        [],
    )


def test_override_default_cycle_returns_to_the_partner_default() -> None:
    """set override, then 'default' removes it and the partner default applies again."""
    p = InMemoryProjection()
    apply(
        p,
        owner_changed("platform", partner_contact=ALICE, time="2026-11-20T09:00:00+00:00"),
        owner_changed("partner", client_id="c1", partner_contact=BOB, time="2026-11-20T09:01:00+00:00"),
    )
    assert notify(p, renewal("c1", days=30)).resolved_from == "client_override"
    apply(p, owner_changed("default", client_id="c1", time="2026-11-20T09:02:00+00:00"))
    n = notify(p, renewal("c1", days=29, decision_maker=DORA))
    assert (n.resolved_from, emails(n.cc)) == ("partner_default", ["alice@partner.example"])


def test_an_override_belongs_to_its_partner() -> None:
    """A client that moved to another partner no longer gets the old partner's override."""
    p = InMemoryProjection()
    apply(p, owner_changed("partner", "p1", "c1", partner_contact=BOB))
    n = notify(p, renewal("c1", "p2", decision_maker=DORA))
    assert (n.resolved_from, n.owner, n.partner_id) == ("system_default", "platform", "p2")


def test_direct_customers_always_get_the_system_default() -> None:
    """partner_id null: no partner setting applies."""
    p = InMemoryProjection()
    n = notify(p, renewal("c1", None, decision_maker=DORA))
    assert (n.resolved_from, n.owner, n.audience) == ("system_default", "platform", "decision_maker")


# --- ordering -------------------------------------------------------------------------


def test_out_of_order_owner_changes_converge_to_the_latest() -> None:
    """An older OwnerChanged arriving after a newer one is ignored."""
    newer = owner_changed("partner", partner_contact=BOB, time="2026-11-20T10:00:00+00:00")
    older = owner_changed("platform", partner_contact=ALICE, time="2026-11-20T09:00:00+00:00")
    p = InMemoryProjection()
    assert apply(p, newer, older) == ["owner.changed", "owner.stale_ignored"]
    assert p.settings[SettingKey("p1", None)].value.owner == "partner"


def test_every_delivery_order_gives_the_same_state() -> None:
    """Equal times are broken by the larger event id, so both orders agree."""
    a = owner_changed("partner", partner_contact=BOB, id="evt-a")
    b = owner_changed("platform", partner_contact=ALICE, id="evt-b")
    first, second = InMemoryProjection(), InMemoryProjection()
    apply(first, a, b)
    apply(second, b, a)
    assert first.settings == second.settings
    assert first.settings[SettingKey("p1", None)].value.owner == "platform"


def test_a_duplicate_owner_change_is_ignored() -> None:
    """The same event twice changes nothing the second time."""
    message = owner_changed("platform", partner_contact=ALICE)
    assert apply(InMemoryProjection(), message, message) == ["owner.changed", "owner.duplicate_ignored"]


def test_a_late_override_does_not_resurrect_a_cleared_one() -> None:
    """Clearing keeps its time: an older 'set' arriving later stays ignored."""
    set_old = owner_changed("partner", client_id="c1", partner_contact=BOB, time="2026-11-20T09:00:00+00:00")
    clear = owner_changed("default", client_id="c1", time="2026-11-20T10:00:00+00:00")
    p = InMemoryProjection()
    assert apply(p, clear, set_old) == ["owner.cleared", "owner.stale_ignored"]
    assert notify(p, renewal("c1", decision_maker=DORA)).resolved_from == "system_default"


# --- decision maker -------------------------------------------------------------------


def test_the_last_decision_maker_seen_is_remembered() -> None:
    """A reminder without a DM uses the one a previous event named."""
    p = InMemoryProjection()
    notify(p, renewal("c1", decision_maker=DORA, days=30))
    n = notify(p, renewal("c1", days=29))
    assert (emails(n.to), n.audience) == (["dora@client.example"], "decision_maker")


def test_an_older_decision_maker_does_not_replace_a_newer_one() -> None:
    """The remembered DM follows last-writer-wins by event time."""
    p = InMemoryProjection()
    notify(
        p,
        renewal(
            "c1", decision_maker=contact("new", "client.example"), days=30, time="2026-11-20T10:00:00+00:00"
        ),
    )
    notify(
        p,
        renewal(
            "c1", decision_maker=contact("old", "client.example"), days=29, time="2026-11-19T10:00:00+00:00"
        ),
    )
    n = notify(p, renewal("c1", days=28, time="2026-11-21T10:00:00+00:00"))
    assert emails(n.to) == ["new@client.example"]


# --- once per reminder ----------------------------------------------------------------


def test_the_same_reminder_under_two_event_ids_is_sent_once() -> None:
    """Same client, renewal date and days: the second is a repeat."""
    p = InMemoryProjection()
    first = renewal("c1", decision_maker=DORA, id="billing-1")
    second = renewal("c1", decision_maker=DORA, id="billing-2")
    assert apply(p, first, second) == ["renewal.notification_requested", "renewal.duplicate_reminder"]


def test_a_different_day_count_is_a_different_reminder() -> None:
    """The 30-day and the 7-day reminders are both sent."""
    p = InMemoryProjection()
    assert apply(
        p, renewal("c1", decision_maker=DORA, days=30), renewal("c1", decision_maker=DORA, days=7)
    ) == [
        "renewal.notification_requested",
        "renewal.notification_requested",
    ]


def test_the_notification_id_is_derived_from_the_reminder_not_the_event_id() -> None:
    """UUIDv5 of the reminder key (client, renewal date, days before): the same on every worker, after every crash, and under any event id; another reminder of the same client has another id."""
    n = notify(InMemoryProjection(), renewal("c1", decision_maker=DORA, id="billing-42", days=30))
    again = notify(InMemoryProjection(), renewal("c1", "p2", decision_maker=DORA, id="billing-43", days=30))
    week = notify(InMemoryProjection(), renewal("c1", decision_maker=DORA, id="billing-44", days=7))
    key = ReminderKey("c1", date(2026, 12, 20), 30)
    assert n.notification_id == again.notification_id == notification_id_for(key) != week.notification_id
    assert (n.causation_id, again.causation_id) == ("billing-42", "billing-43")


def test_a_reminder_pruned_and_sent_again_under_another_event_id_keeps_its_notification_id() -> None:
    """A backfill after the reminder key was pruned: the reminder is notified again, under the same notification id, so consumers deduplicate it."""
    projection = InMemoryProjection()
    first = notify(projection, renewal("c1", decision_maker=DORA, id="original", renewal_date="2026-01-05"))
    projection.reminders.clear()  # retention pruned the key (renewal date more than 7 days past)
    second = notify(projection, renewal("c1", decision_maker=DORA, id="backfill", renewal_date="2026-01-05"))
    assert first.notification_id == second.notification_id


# --- addresses ------------------------------------------------------------------------


def test_a_cc_equal_to_the_to_address_is_dropped_case_insensitively() -> None:
    """DM and contact are the same person: one address, audience decision_maker."""
    p = InMemoryProjection()
    apply(p, owner_changed("platform", partner_contact=ALICE))
    n = notify(p, renewal(decision_maker={"email": "ALICE@Partner.example"}))
    assert (emails(n.to), emails(n.cc), n.audience) == (["ALICE@Partner.example"], [], "decision_maker")
