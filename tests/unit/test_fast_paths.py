"""The shortcuts the hot path takes produce exactly what the slow, obvious code would."""

import uuid
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from events import (
    Contact,
    NotificationRequested,
    NotificationRequestedData,
    RenewalApproaching,
    parse,
)
from handlers import (
    OwnerSetting,
    ReminderKey,
    SettingKey,
    Stamp,
    Versioned,
    notification_id_for,
    on_owner_changed,
    on_renewal_approaching,
)
from handlers.reminders import NOTIFICATION_NAMESPACE
from support.messages import contact, encode, owner_changed, renewal
from tests.fakes import InMemoryProjection
from worker.service.notifications import NotificationWriter, time_of
from worker.store import Changes, SqlStore
from worker.store.projection_writes import ReportedWrites, SerializedWrites
from worker.store.sqlite import SqliteBackend


@settings(max_examples=300, deadline=None)
@given(st.text(), st.dates(), st.integers(min_value=0, max_value=36500))
def test_notification_ids_are_the_standard_uuid5(client_id: str, renewal_date: date, days: int) -> None:
    """The hand-rolled UUIDv5 equals uuid.uuid5 under the namespace, of the reminder key as docs/domain.md writes it, for any key."""
    name = f"{client_id}\n{renewal_date.isoformat()}\n{days}"
    assert notification_id_for(ReminderKey(client_id, renewal_date, days)) == str(
        uuid.uuid5(NOTIFICATION_NAMESPACE, name)
    )


def decided(*messages: dict) -> NotificationRequestedData:
    projection = InMemoryProjection()
    data = None
    for message in messages:
        event = parse(encode(message), "application/json")
        if isinstance(event, RenewalApproaching):
            data = on_renewal_approaching(event, projection=projection).notification
        else:
            on_owner_changed(event, projection=projection)
    assert data is not None
    return data


EXAMPLES = [
    (renewal("c1", decision_maker=contact("dora", "client.example")),),
    (
        owner_changed("platform", partner_contact=contact("alice")),
        renewal("c1", decision_maker=contact("dora")),
    ),
    (
        owner_changed("partner", partner_contact={"email": "Ünï@ex.example", "name": 'quote " and \\\\'}),
        renewal("c1"),
    ),
    (
        owner_changed("platform", partner_contact=contact("alice")),
        {**renewal("c2"), "data": {**renewal("c2")["data"], "client_name": 'Åsa & "Co" \u2028'}},
    ),
]


def test_the_envelope_written_around_the_data_is_the_models_own_json() -> None:
    """NotificationWriter's bytes equal NotificationRequested(...).model_dump_json(), byte for byte."""
    now = datetime(2026, 11, 28, 15, 4, 5, 123456, tzinfo=UTC)
    writer = NotificationWriter('urn:renewal-routing:worker "quoted"', "renewals.notifications")
    for messages in EXAMPLES:
        data = decided(*messages)
        row = writer.row(data, time_of(now))
        expected = NotificationRequested(
            specversion="1.0",
            id=data.notification_id,
            source='urn:renewal-routing:worker "quoted"',
            type="NotificationRequested",
            time=now,
            subject=data.client_id,
            data=data,
        ).model_dump_json()
        assert row.body == expected.encode()
        assert NotificationRequested.model_validate_json(row.body).data == data


def test_canonical_lines_carry_what_structlogs_json_lines_carry(capsys) -> None:
    """A batch's lines written by logs.canonical hold the same keys and values as structlog's
    JSON renderer gives for the same call, and respect the level."""
    import json

    from worker import logs

    fields = {"event_id": "e-1", "client_id": "Ünï \u2028", "audience": "both", "attempts": 3}
    logs.configure("info", "json")
    log = logs.get_logger("renewals.test")
    log.info("renewal.notification_requested", **fields)
    logs.canonical(log, [("info", "renewal.notification_requested", fields)])
    general, fast = (json.loads(line) for line in capsys.readouterr().err.split("\n")[:2])
    assert general.pop("timestamp")[:10] == fast.pop("timestamp")[:10]
    assert fast == general and list(fast) == list(general)
    logs.configure("warning", "json")
    logs.canonical(log, [("info", "a", {}), ("warning", "b", {})])
    assert [json.loads(line)["event"] for line in capsys.readouterr().err.splitlines()] == ["b"]


def test_publish_properties_are_encoded_as_py_amqp_encodes_them() -> None:
    """encode_properties gives py-amqp's own bytes for every property kind, headers included."""
    from amqp.basic_message import Message

    from worker.broker.publisher import encode_properties

    properties = {
        "content_type": "application/cloudevents+json",
        "content_encoding": "utf-8",
        "application_headers": {"x-attempts": 2, "x-error-detail": "Ünï", "nested": {"a": [1, "b"]}},
        "delivery_mode": 2,
        "priority": 5,
        "correlation_id": "evt-1",
        "reply_to": "r",
        "message_id": "9320197b-7599-561a-a26d-21e56dc2742b",
        "timestamp": 1_700_000_000,
        "type": "NotificationRequested",
        "app_id": "renewal-routing",
    }
    odd = {"message_id": "\ud800 lone surrogate, as py-amqp decodes one", "type": "Ünï"}
    for subset in (properties, {"delivery_mode": 2}, {}, {"application_headers": {}}, odd):
        assert encode_properties(subset) == Message(b"", **subset)._serialize_properties()


_STAMPS = st.builds(Stamp, st.integers(min_value=0, max_value=3), st.sampled_from(["a", "b", "B"]))
_SETTING_KEYS = st.builds(SettingKey, st.sampled_from(["p1", "p2"]), st.sampled_from([None, "c1", "c2"]))
_CLIENTS = st.sampled_from(["c1", "c2", "c3"])
_REMINDER_KEYS = st.builds(ReminderKey, _CLIENTS, st.just(date(2026, 12, 20)), st.sampled_from([7, 30]))
_SETTINGS = st.dictionaries(
    _SETTING_KEYS,
    st.builds(Versioned, st.sampled_from([None, OwnerSetting("partner", None)]), _STAMPS),
)
_CONTACTS = st.dictionaries(_CLIENTS, st.builds(Versioned, st.just(Contact(email="a@b.example")), _STAMPS))
_CLAIMS = st.dictionaries(_REMINDER_KEYS, st.sampled_from(["n-1", "n-2"]))


@settings(max_examples=60, deadline=None)
@given(_SETTINGS, _CONTACTS, _CLAIMS, _SETTINGS, _CONTACTS, _CLAIMS)
def test_serialized_writes_store_what_reported_writes_store(
    settings_before: dict[SettingKey, Versioned[OwnerSetting]],
    contacts_before: dict[str, Versioned[Contact]],
    claims_before: dict[ReminderKey, str],
    settings_after: dict[SettingKey, Versioned[OwnerSetting]],
    contacts_after: dict[str, Versioned[Contact]],
    claims_after: dict[ReminderKey, str],
) -> None:
    """SQLite's executemany writes (everything stands) leave the same rows as the reporting
    multi-row writes, for any stored state and any batch; and where the batch only holds what
    is newer than what it read, as a working set under the write lock does, they report the same."""
    backend = SqliteBackend(":memory:")
    stores = {}
    for name, writes in (("reported", ReportedWrites(backend)), ("serialized", SerializedWrites(backend))):
        store = SqlStore(backend)
        store.migrate()
        with store.transaction() as transaction:
            transaction.write(Changes(settings_before, contacts_before, claims_before))
            stored = transaction.settings(settings_after)
            newer = {
                key: setting
                for key, setting in settings_after.items()
                if (old := stored[key]) is None or setting.stamp > old.stamp
            }
            unclaimed = {key: n for key, n in claims_after.items() if key not in claims_before}
            reported = (
                writes.settings(store, newer),
                writes.reminders(store, unclaimed),
            )
            writes.decision_makers(store, contacts_after)
            writes.settings(store, settings_after)
            writes.reminders(store, claims_after)
        stores[name] = (reported, _rows(store))
    assert stores["serialized"] == stores["reported"]


def _rows(store: SqlStore) -> list[list[tuple[object, ...]]]:
    return [
        sorted(store.execute(f"SELECT * FROM {table}").fetchall())
        for table in ("owner_settings", "decision_makers", "reminders")
    ]
