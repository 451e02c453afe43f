"""`owners show` reads the projection through the domain's own rules: no broker, no database."""

from datetime import timedelta

import pytest

from events import OwnerChanged, RenewalApproaching, parse
from handlers import on_owner_changed, on_renewal_approaching
from support.messages import contact, encode, owner_changed, renewal
from tests.fakes import InMemoryProjection
from worker.tools.owners import described, ownership

ALICE = contact("alice")
BOB = contact("bob")
DORA = contact("dora", "client.example")


def projection_after(*messages: dict) -> InMemoryProjection:
    projection = InMemoryProjection()
    for message in messages:
        event = parse(encode(message), "application/json")
        if isinstance(event, OwnerChanged):
            on_owner_changed(event, projection=projection)
        else:
            assert isinstance(event, RenewalApproaching)
            on_renewal_approaching(event, projection=projection)
    return projection


def test_a_client_override_with_a_remembered_decision_maker() -> None:
    """The override wins, and the remembered decision maker is addressed with nobody copied."""
    projection = projection_after(
        owner_changed("platform", "p1", partner_contact=ALICE),
        owner_changed("platform", "p1", "c1", id="ov-1"),
        renewal("c1", "p1", decision_maker=DORA),
    )
    found = ownership(projection, "p1", "c1").as_dict()
    assert (found["owner"], found["resolved_from"], found["changed_by_event"]) == (
        "platform",
        "client_override",
        "ov-1",
    )
    assert found["decision_maker"]["email"] == DORA["email"]
    [now] = found["recipients"]
    assert ([r["email"] for r in now["to"]], now["cc"], now["audience"]) == (
        [DORA["email"]],
        [],
        "decision_maker",
    )


def test_no_recipient_is_said_plainly() -> None:
    """Platform owner, no contact, no decision maker: the rule table's dead-letter row."""
    found = ownership(InMemoryProjection(), "p1", "c1").as_dict()
    assert (found["owner"], found["resolved_from"], found["partner_contact"]) == (
        "platform",
        "system_default",
        None,
    )
    assert found["recipients"] == [
        {
            "case": "now",
            "no_recipient": "owner is 'platform', no decision maker is known and no partner contact is set",
        }
    ]


def test_the_partner_wide_view_shows_both_cases() -> None:
    """Without --client: what a client without an override gets, with and without a decision maker."""
    projection = projection_after(
        owner_changed("platform", "p1", partner_contact=BOB),
        owner_changed("partner", "p1", "c9", partner_contact=ALICE),
    )
    found = ownership(projection, "p1").as_dict()
    assert (found["client_id"], found["resolved_from"], found["partner_contact"]["email"]) == (
        None,
        "partner_default",
        BOB["email"],
    )
    with_maker, without = found["recipients"]
    assert (with_maker["audience"], [r["email"] for r in with_maker["cc"]]) == ("both", [BOB["email"]])
    assert with_maker["to"] == [{"role": "decision_maker", "email": None, "name": None, "user_id": None}]
    assert (without["fallback"], [r["email"] for r in without["to"]]) == (
        "decision_maker_missing",
        [BOB["email"]],
    )


@pytest.mark.parametrize(
    ("time", "changed_at"),
    [
        ("0001-01-01T00:00:00+14:00", "-62135647200000000 microseconds from 1970-01-01T00:00:00+00:00"),
        ("0001-01-01T00:00:00+00:00", "0001-01-01T00:00:00+00:00"),
        ("9999-12-31T23:59:59-23:59", "253402387139000000 microseconds from 1970-01-01T00:00:00+00:00"),
    ],
)
def test_settings_changed_at_the_edges_of_the_calendar_are_stamped_and_shown(
    time: str, changed_at: str
) -> None:
    """Stamp.of and `owners show` take any time a model holds (year 1 at +14:00, year 9999 at -23:59): no OverflowError."""
    event = parse(encode(owner_changed("partner", "p1", partner_contact=ALICE, time=time)), "application/json",
                  max_future=timedelta.max)  # fmt: skip
    assert isinstance(event, OwnerChanged)
    projection = InMemoryProjection()
    on_owner_changed(event, projection=projection)
    found = ownership(projection, "p1", "c1")
    assert str(found.as_dict()["changed_at"]).startswith(changed_at)
    assert "partner" in described(found)


def test_owners_output_escapes_control_characters() -> None:
    """Ids with control characters (typed, or stored before the contract refused them) print escaped, never raw."""
    shown = described(ownership(InMemoryProjection(), "p\x1b[2J", "c\r1"))
    assert "\x1b" not in shown and "\r" not in shown and "p\\x1b[2J" in shown and "c\\r1" in shown
