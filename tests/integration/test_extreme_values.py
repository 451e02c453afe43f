"""Every value the contract accepts fits every store: the largest ids, texts and day counts, and
times at both ends of the calendar, through the handlers into SQLite and PostgreSQL and back."""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, timedelta

import pytest

from events import OwnerChanged, RenewalApproaching, parse
from events.models import MAX_DAYS_UNTIL_RENEWAL, MAX_IDENTIFIER_BYTES, MAX_TEXT_CHARS
from handlers import ReminderKey, SettingKey, on_owner_changed, on_renewal_approaching
from support.messages import contact, encode, owner_changed, renewal
from worker.store import SqlStore, WorkingSet, open_store
from worker.tools.owners import ownership

LONGEST_ID = "ü😀" * (MAX_IDENTIFIER_BYTES // 6) + "abc"  # non-ASCII, exactly the limit in bytes
assert len(LONGEST_ID.encode()) == MAX_IDENTIFIER_BYTES
LONGEST_TEXT = "名" * MAX_TEXT_CHARS


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    """The folder's fresh store of each backend, migrated."""
    opened = open_store(store_url)
    opened.migrate()
    yield opened
    opened.close()


def test_the_longest_ids_texts_and_day_counts_are_recorded(store: SqlStore) -> None:
    """A 255-byte id (2- and 4-byte characters), 1000-character names and a century of days go into the store and come back intact."""
    message = renewal(LONGEST_ID, LONGEST_ID, id=LONGEST_ID, days=MAX_DAYS_UNTIL_RENEWAL,
                      decision_maker={**contact("dora"), "name": LONGEST_TEXT, "user_id": LONGEST_ID})  # fmt: skip
    message["data"] |= {"client_name": LONGEST_TEXT, "subscription": LONGEST_TEXT}
    event = parse(encode(message), "application/json")
    assert isinstance(event, RenewalApproaching)
    with batch_of(store) as batch:
        on_owner_changed(_owner_change(LONGEST_ID), projection=batch)
        decision = on_renewal_approaching(event, projection=batch)
        assert decision.notification is not None and decision.notification.client_name == LONGEST_TEXT
    with batch_of(store) as batch:
        remembered = batch.decision_maker(LONGEST_ID)
        assert remembered is not None and remembered.value == event.data.decision_maker
        assert not batch.claim_reminder(
            ReminderKey(LONGEST_ID, date(2026, 12, 20), MAX_DAYS_UNTIL_RENEWAL), "n"
        )


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-23:59"])
def test_times_at_both_ends_of_the_calendar_are_stamped_and_read_back(store: SqlStore, time: str) -> None:
    """Year 1 at +14:00 and year 9999 at -23:59 (accepted with a tolerance that allows it) become stamps every store holds."""
    event = parse(
        encode(owner_changed("platform", "p1", "c1", time=time)), "application/json", max_future=timedelta.max
    )
    assert isinstance(event, OwnerChanged)
    with batch_of(store) as batch:
        assert on_owner_changed(event, projection=batch).outcome == "owner.changed"
    with batch_of(store) as batch:
        stored = batch.setting(SettingKey("p1", "c1"))
        assert stored is not None and stored.stamp.event_id == event.id
        assert ownership(batch, "p1", "c1").as_dict()["changed_by_event"] == event.id


def test_the_partner_wide_owners_view_reads_every_store(store: SqlStore) -> None:
    """`owners show --partner P` looks up a client id no real client has, and every store accepts it (PostgreSQL refuses NUL)."""
    with batch_of(store) as batch:
        on_owner_changed(_owner_change("p1"), projection=batch)
        found = ownership(batch, "p1").as_dict()
    assert (found["resolved_from"], found["partner_contact"]["email"]) == (
        "partner_default",
        contact("alice")["email"],
    )


@contextmanager
def batch_of(store: SqlStore) -> Iterator[WorkingSet]:
    """One transaction: the handlers work on a working set, whose changes are written back."""
    with store.transaction() as transaction:
        work = WorkingSet(transaction)
        yield work
        transaction.write(work.changes())


def _owner_change(partner_id: str) -> OwnerChanged:
    event = parse(
        encode(owner_changed("platform", partner_id, partner_contact=contact("alice"))), "application/json"
    )
    assert isinstance(event, OwnerChanged)
    return event
