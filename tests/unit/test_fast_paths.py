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
    iso_date,
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


@settings(max_examples=300, deadline=None)
@given(st.dates())
def test_the_remembered_iso_date_is_the_dates_isoformat(day: date) -> None:
    """`iso_date`, cached, gives what `date.isoformat` gives, asked once or again."""
    assert iso_date(day) == day.isoformat()
    assert iso_date(day) == day.isoformat()


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(timezones=st.timezones() | st.just(UTC)),
    st.datetimes(timezones=st.just(UTC)),
)
def test_a_stamp_capped_at_now_is_the_earlier_of_the_two_times(time: datetime, now: datetime) -> None:
    """Stamp.of compares the two times as microseconds since the epoch: the stamp is that of
    `now` exactly when the event's time is after it, as comparing the datetimes says."""
    expected = Stamp.of(now if time > now else time, "e")
    assert Stamp.of(time, "e", now=now) == expected
    assert Stamp.of(time, "e") == Stamp.of(time, "e", now=None)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=40),
    st.integers(min_value=0, max_value=40),
)
def test_padded_lists_and_tables_match_what_the_values_match(values: list[int], stored: int) -> None:
    """SQLite's `any_of` and `table`, padded to a power of two with copies of the last value,
    find the same rows as the values themselves would (callers pass a chunk: never none)."""
    backend = SqliteBackend(":memory:")
    db = backend.connect()
    db.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)")
    db.executemany("INSERT INTO t VALUES (?)", [(n,) for n in range(stored)])
    one_of, params = backend.any_of("bigint", values)
    assert sorted(row[0] for row in db.execute(f"SELECT n FROM t WHERE n {one_of}", params)) == sorted(
        {n for n in values if n < stored}
    )
    table, params = backend.table(("bigint",), [(n,) for n in values])
    joined = {row[0] for row in db.execute(f"SELECT t.n FROM {table} JOIN t ON t.n = k.column1", params)}
    assert joined == {n for n in values if n < stored}


def test_padded_lists_of_any_length_up_to_a_chunk_are_a_handful_of_statements() -> None:
    """What the padding is for: every length from 1 to a chunk's 500 is one of ten texts, which
    sqlite3 prepares once each."""
    backend = SqliteBackend(":memory:")
    texts = {backend.any_of("bigint", list(range(count)))[0] for count in range(1, 501)}
    assert len(texts) == 10


def test_sqlite_binds_none_bytes_and_bools_as_it_did_before_their_adapters() -> None:
    """The adapters registered for speed change nothing stored: None is NULL, bytes a BLOB, a
    bool the integer 0 or 1."""
    db = SqliteBackend(":memory:").connect()
    stored = db.execute(
        "SELECT typeof(?), typeof(?), ?, typeof(?), ?", (None, b"\x00x", b"\x00x", True, False)
    )
    assert stored.fetchone() == ("null", "blob", b"\x00x", "integer", 0)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=5),
    st.lists(st.uuids().map(str), unique=True, max_size=30),
    st.lists(st.binary(max_size=20), min_size=30, max_size=30),
)
def test_serialized_outbox_inserts_number_rows_as_reported_ones_do(
    before: int, notification_ids: list[str], bodies: list[bytes]
) -> None:
    """SQLite's one prepared outbox insert over every row numbers and stores the rows as the
    multi-row insert that returns the numbers does, whatever the outbox held before."""
    backend = SqliteBackend(":memory:")
    earlier = [(f"earlier-{n}", "c", "k", b"", 1, None) for n in range(before)]
    rows = [
        (notification_id, f"c-{n}", "k", body, 2, n if n % 2 else None)
        for n, (notification_id, body) in enumerate(
            zip(notification_ids, bodies[: len(notification_ids)], strict=True)
        )
    ]
    found = {}
    for name, writes in (("reported", ReportedWrites(backend)), ("serialized", SerializedWrites(backend))):
        store = SqlStore(backend)
        store.migrate()
        with store.transaction():
            writes.enqueue(store, earlier)
            seqs = writes.enqueue(store, rows)
        stored = store.execute(
            "SELECT seq, notification_id, correlation_id, routing_key, body, created_at_us, ledger_seq"
            " FROM outbox ORDER BY seq"
        ).fetchall()
        found[name] = (seqs, stored)
    assert found["serialized"] == found["reported"]
    assert [row[1] for row in found["serialized"][1][before:]] == notification_ids
