"""The ordering rule for events stamped ahead of the worker's clock (docs/domain.md, "Ordering"):
a stamp's time is the event's time, or the moment the worker handles it if that is earlier. So a
change from a clock running fast cannot outrank a correct change made after it arrived."""

from datetime import UTC, datetime, timedelta

from events import OwnerChanged, RenewalApproaching
from handlers import SettingKey, Stamp, on_owner_changed, on_renewal_approaching
from support.messages import contact, owner_changed, renewal
from tests.fakes import InMemoryProjection

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
ALICE, BOB = contact("alice"), contact("bob")
DORA, ERIN = contact("dora", "client.example"), contact("erin", "client.example")
KEY = SettingKey("p1", None)


def change(owner: str, at: datetime, id: str, partner_contact: dict[str, str] | None = None) -> OwnerChanged:
    return OwnerChanged.model_validate(owner_changed(owner, "p1", partner_contact=partner_contact, id=id,
                                                     time=at.isoformat()))  # fmt: skip


def test_a_change_stamped_ahead_counts_as_made_when_it_was_handled() -> None:
    """An OwnerChanged stamped 4 minutes ahead, handled now, is stored with the stamp of now, not of its own time."""
    projection = InMemoryProjection()
    ahead = change("partner", NOW + timedelta(minutes=4), "fast-clock", ALICE)
    assert on_owner_changed(ahead, projection=projection, now=NOW).outcome == "owner.changed"
    stored = projection.setting(KEY)
    assert stored is not None and stored.stamp == Stamp.of(NOW, "fast-clock")


def test_a_correct_change_made_after_a_fast_clock_s_change_arrived_wins() -> None:
    """The finding: a change stamped 4 minutes ahead, then a correct change made a minute later. The correct one is applied (it was ignored as stale before, and lost for good), and the one after it too."""
    projection = InMemoryProjection()
    ahead = change("partner", NOW + timedelta(minutes=4), "fast-clock", ALICE)
    on_owner_changed(ahead, projection=projection, now=NOW)
    later = NOW + timedelta(minutes=1)
    correct = change("platform", later, "correct")
    assert on_owner_changed(correct, projection=projection, now=later).outcome == "owner.changed"
    stored = projection.setting(KEY)
    assert stored is not None and stored.value is not None and stored.value.owner == "platform"
    # Without the cap the fast clock's stamp would still be ahead of the correct change:
    assert Stamp.of(ahead.time, ahead.id) > Stamp.of(correct.time, correct.id)


def test_a_change_made_before_the_fast_clock_s_change_arrived_stays_older() -> None:
    """Capping never reorders the past: a change made (and stamped) before the ahead one was handled is still stale when it comes late."""
    projection = InMemoryProjection()
    on_owner_changed(change("partner", NOW + timedelta(minutes=4), "fast-clock", ALICE), projection=projection,
                     now=NOW)  # fmt: skip
    earlier = change("platform", NOW - timedelta(seconds=30), "earlier")
    late = NOW + timedelta(minutes=2)
    assert on_owner_changed(earlier, projection=projection, now=late).outcome == "owner.stale_ignored"


def test_events_in_the_past_keep_their_own_time() -> None:
    """An event whose time is before the moment it is handled keeps that time exactly: the rule only touches times ahead of the clock."""
    past = NOW - timedelta(days=3, microseconds=7)
    assert Stamp.of(past, "e", now=NOW) == Stamp.of(past, "e")
    assert Stamp.of(NOW, "e", now=NOW) == Stamp.of(NOW, "e")


def test_two_changes_ahead_in_one_batch_tie_on_time_and_the_event_id_decides() -> None:
    """Both stamped ahead and handled at the same moment: both get that moment, and the larger event id wins, as for any tie."""
    projection = InMemoryProjection()
    on_owner_changed(
        change("partner", NOW + timedelta(minutes=2), "b", ALICE), projection=projection, now=NOW
    )
    second = change("partner", NOW + timedelta(minutes=1), "a", BOB)
    assert on_owner_changed(second, projection=projection, now=NOW).outcome == "owner.stale_ignored"
    third = change("partner", NOW + timedelta(minutes=1), "c", BOB)
    assert on_owner_changed(third, projection=projection, now=NOW).outcome == "owner.changed"


def test_the_same_event_handled_again_later_is_a_duplicate() -> None:
    """An event stamped ahead handled once now, and again later (say, replayed after its inbox entry expired): the second time is owner.duplicate_ignored, although its capped stamp differs."""
    projection = InMemoryProjection()
    ahead = change("partner", NOW + timedelta(minutes=4), "fast-clock", ALICE)
    on_owner_changed(ahead, projection=projection, now=NOW)
    later = NOW + timedelta(minutes=2)
    assert on_owner_changed(ahead, projection=projection, now=later).outcome == "owner.duplicate_ignored"
    stored = projection.setting(KEY)
    assert stored is not None and stored.stamp == Stamp.of(NOW, "fast-clock")


def test_a_decision_maker_named_ahead_does_not_outrank_one_named_after_it_arrived() -> None:
    """The same rule for remembered decision makers: a reminder stamped ahead names Dora, a reminder made after it arrived names Erin; Erin is remembered."""
    projection = InMemoryProjection()
    ahead = RenewalApproaching.model_validate(
        renewal("c1", None, decision_maker=DORA, id="r-fast", time=(NOW + timedelta(minutes=4)).isoformat())
    )
    on_renewal_approaching(ahead, projection=projection, now=NOW)
    later = NOW + timedelta(minutes=1)
    correct = RenewalApproaching.model_validate(
        renewal("c1", None, decision_maker=ERIN, id="r-correct", days=7, time=later.isoformat())
    )
    on_renewal_approaching(correct, projection=projection, now=later)
    remembered = projection.decision_maker("c1")
    assert remembered is not None and remembered.value is not None and remembered.value.email == ERIN["email"]
