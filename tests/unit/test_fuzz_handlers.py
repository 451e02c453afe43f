"""Fuzzing the domain: any sequence of valid events, of every kind and with any values the
contract accepts, through the handlers: only a Decision or a classified InvalidInput comes out, and every
stamp recorded fits a 64-bit integer."""

from datetime import date, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import InvalidInput, NotificationRequestedData, OwnerChanged, RenewalApproaching
from events.models import MAX_DAYS_UNTIL_RENEWAL
from handlers import HANDLERS, Decision, NoRecipient
from tests.fakes import InMemoryProjection

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OUTCOMES = {
    "renewal.notification_requested", "renewal.duplicate_reminder",
    "owner.changed", "owner.cleared", "owner.stale_ignored", "owner.duplicate_ignored",
}  # fmt: skip

# Everything the contract accepts in a text field: any character but controls (Cc) and
# surrogates (Cs), which are no Unicode text.
printable = st.characters(exclude_categories=["Cc", "Cs"])
texts = st.text(printable, max_size=1000) | st.text(printable, max_size=5)


def _within_255_bytes(text: str) -> str:
    return text.encode()[:255].decode(errors="ignore")


# Ids up to the contract's limit of 255 bytes in UTF-8.
ids = st.sampled_from(["p1", "p2", "c1", "c2"]) | st.text(printable, min_size=1, max_size=255).map(
    _within_255_bytes
).filter(bool)
address_part = st.text(st.characters(exclude_categories=["Cc", "Cs", "Zs", "Zl", "Zp"], exclude_characters="@"),
                       min_size=1, max_size=20)  # fmt: skip
emails = st.builds(
    lambda local, domain, tld: f"{local}@{domain}.{tld}", address_part, address_part, address_part
)
contacts = st.fixed_dictionaries(
    {"email": emails},
    optional={
        "name": st.none() | texts,
        "user_id": st.none() | st.text(printable, max_size=255).map(_within_255_bytes),
    },
)
offsets = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda m: timezone(timedelta(minutes=m))
)
times = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59), timezones=offsets
)
envelopes = st.fixed_dictionaries(
    {"specversion": st.just("1.0"), "id": ids, "source": ids, "time": times},
    optional={"subject": st.none() | texts},
)


@st.composite
def renewals(draw: st.DrawFn) -> RenewalApproaching:
    envelope = draw(envelopes)
    days = draw(st.none() | st.integers(min_value=0, max_value=MAX_DAYS_UNTIL_RENEWAL))
    start = envelope["time"].date()
    ahead = draw(st.integers(min_value=0, max_value=min(MAX_DAYS_UNTIL_RENEWAL, (date.max - start).days)))
    data: dict[str, Any] = {
        "partner_id": draw(st.none() | ids),
        "client_id": draw(ids),
        "renewal_date": start + timedelta(days=ahead) if days is None else draw(st.dates()),
        "days_until_renewal": days,
        "client_name": draw(st.none() | texts),
        "subscription": draw(st.none() | texts),
        "decision_maker": draw(st.none() | contacts),
    }
    return RenewalApproaching.model_validate({**envelope, "type": "RenewalApproaching", "data": data})


@st.composite
def owner_changes(draw: st.DrawFn) -> OwnerChanged:
    owner = draw(st.sampled_from(["platform", "partner", "default"]))
    data = {
        "partner_id": draw(ids),
        "client_id": draw(ids) if owner == "default" else draw(st.none() | ids),
        "owner": owner,
        "partner_contact": draw(contacts) if owner == "partner" else draw(st.none() | contacts),
    }
    return OwnerChanged.model_validate({**draw(envelopes), "type": "OwnerChanged", "data": data})


@FUZZ
@given(st.lists(renewals() | owner_changes(), min_size=1, max_size=12))
def test_valid_events_of_every_kind_only_ever_decide_or_are_invalid_input(
    events: list[RenewalApproaching | OwnerChanged],
) -> None:
    """Through on_renewal_approaching and on_owner_changed in any order, with any accepted values and times from year 1 to 9999: a Decision or NoRecipient, nothing else."""
    projection = InMemoryProjection()
    for event in events:
        try:
            decision = HANDLERS[type(event)](event, projection=projection)
        except InvalidInput as problem:
            assert isinstance(problem, NoRecipient) and problem.reason == "no_recipient"
            continue
        assert isinstance(decision, Decision) and decision.outcome in OUTCOMES
        if decision.notification is not None:
            assert isinstance(decision.notification, NotificationRequestedData)
            assert decision.notification.to and decision.notification.causation_id == event.id
    stamps = [setting.stamp for setting in projection.settings.values()]
    stamps += [seen.stamp for seen in projection.decision_makers.values()]
    assert all(-(2**63) <= stamp.at_us < 2**63 for stamp in stamps)  # a BIGINT in every store
