"""Erasure of a client's or a person's data (worker/erasure) on both stores: what it leaves is
checked by scanning every text and binary column of every table the store has, so a table added
later is covered without naming it here."""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner

from events import Contact
from worker.cli import main
from worker.dead_letters import cut
from worker.dead_letters.actions import archive, note
from worker.dead_letters.model import STATUSES, LetterFilter, NewLetter
from worker.dead_letters.records import DeadLetterRecords
from worker.erasure import NotificationsPending, forget, preview, subject_of
from worker.settings import Settings
from worker.store import SqlStore, open_store

SETTINGS = Settings()


@dataclass(frozen=True)
class People:
    """The values one test seeds, unique to it: a partner, the client, its decision maker, the
    partner's contact, and another client whose data must survive."""

    partner: str
    client: str
    dora: str  # the client's decision maker
    dora_name: str
    paul: str  # the partner's contact (partner-wide owner setting)
    other_client: str
    olga: str  # the other client's decision maker


@pytest.fixture
def store(store_url: str) -> Iterator[SqlStore]:
    opened = open_store(store_url)
    opened.migrate()
    yield opened
    opened.close()


@pytest.fixture
def people(store: SqlStore) -> People:
    tag = uuid.uuid4().hex[:8]
    found = People(
        partner=f"acme-{tag}",
        client=f"client-{tag}",
        dora=f"dora.{tag}@example.com",
        dora_name=f"Dora Quist{tag}",
        paul=f"paul.{tag}@acme.example",
        other_client=f"other-{tag}",
        olga=f"olga.{tag}@example.org",
    )
    seed(store, found)
    return found


def contact(email: str, name: str | None = None) -> str:
    return Contact(email=email, name=name).model_dump_json()


def seed(store: SqlStore, p: People) -> None:
    """Rows in every place the store keeps personal data, for the client and for another one."""
    with store.writing():
        run = store.execute
        for client, owner_contact in (
            (p.client, contact(p.dora, p.dora_name)),
            ("", contact(p.paul, "Paul")),
        ):
            run(
                "INSERT INTO owner_settings VALUES (?, ?, 'partner', ?, 1, 'e-owner')",
                (p.partner, client, owner_contact),
            )
        run(
            "INSERT INTO owner_settings VALUES (?, ?, 'platform', NULL, 1, 'e-o2')",
            (p.partner, p.other_client),
        )
        for client, email in ((p.client, p.dora), (p.other_client, p.olga)):
            run("INSERT INTO decision_makers VALUES (?, ?, 1, 'e-dm')", (client, contact(email, "Someone")))
            run("INSERT INTO reminders VALUES (?, '2027-01-31', 30, ?)", (client, f"n-{client}"))
            run(
                "INSERT INTO reminder_ledger (event_id, partner_id, client_id, renewal_date, days_until_renewal,"
                " handled_at_us, outcome, to_address, cc_address, decision_maker, detail)"
                " VALUES (?, ?, ?, '2027-01-31', 30, 1, 'notified', ?, ?, ?, ?)",
                (
                    f"e-{uuid.uuid4().hex}",
                    p.partner,
                    client,
                    email,
                    p.paul,
                    contact(email, p.dora_name if email == p.dora else "Olga"),
                    json.dumps(
                        {"decision": {"to": [email], "rule_row": 3}, "why": f"decision maker {email}"}
                    ),
                ),
            )
            run(
                "INSERT INTO owner_history (partner_id, client_id, owner_before, contact_before, owner_after,"
                " contact_after, event_id, changed_at_us, received_at_us, won) VALUES (?, ?, 'platform', NULL,"
                " 'partner', ?, 'e-h', 1, 1, 1)",
                (p.partner, client, contact(email, "Someone")),
            )
        body = json.dumps({"client_id": p.client, "to": [p.dora], "name": p.dora_name}).encode()
        run(
            "INSERT INTO outbox (notification_id, correlation_id, routing_key, body, created_at_us, set_aside)"
            " VALUES ('n-1', 'c-1', 'renewal.notification', ?, 1, 'cannot be encoded')",
            (body,),
        )
    records = DeadLetterRecords(store)
    records.insert(
        [letter(p.client, p.dora, p.dora_name, p.partner), letter(p.other_client, p.olga, "Olga", p.partner)]
    )
    mine, theirs = (records.find(event_id(client))[0].summary.id for client in (p.client, p.other_client))
    note(records, "ops", [mine], f"called {p.dora} about {p.client}")
    note(records, "ops", [theirs], "nothing personal here")
    archive(records, "ops", LetterFilter(statuses=frozenset({"replayed"}), text=p.dora))
    with store.writing():  # edit and retry's before and after: of her letter, and one that added her
        for letter_id, before, after in (
            (mine, {"name": p.dora_name}, {"name": p.dora_name, "fixed": True}),
            (theirs, {"partner_contact": None}, {"partner_contact": {"email": p.dora}}),
        ):
            store.execute(
                "INSERT INTO dead_letter_edits (letter_id, operation_id, at_us, actor, body_before, body_after,"
                " headers_before, headers_after, message_id, to_exchange, to_routing_key)"
                " VALUES (?, ?, 1, 'ops', ?, ?, '{}', '{}', ?, 'renewals.events', 'owner.changed')",
                (
                    letter_id,
                    uuid.uuid4().hex[:12],
                    json.dumps(before).encode(),
                    json.dumps(after).encode(),
                    uuid.uuid4().hex,
                ),
            )


def event_id(client: str) -> str:
    """An opaque event id of the client's letter (it does not spell the client id)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, client).hex


def letter(client: str, email: str, name: str, partner: str) -> NewLetter:
    """A RenewalApproaching dead letter naming the client and its decision maker."""
    body = {
        "specversion": "1.0",
        "id": event_id(client),
        "type": "RenewalApproaching",
        "data": {
            "partner_id": partner,
            "client_id": client,
            "decision_maker": {"email": email, "name": name},
        },
    }
    return NewLetter(
        body=json.dumps(body).encode(),
        properties={"message_id": f"m-{event_id(client)}", "reply_to": email},
        headers={"x-first-death-queue": "renewals.worker", "x-client": client.encode(), "x-contact": email},
        reason="invalid_payload",
        detail=f"data.decision_maker.email: {email} is not allowed",
        failed_at=datetime.now(UTC),
        attempts=1,
        replays=0,
        event_id=event_id(client),
        event_type="RenewalApproaching",
        message_id=f"m-{event_id(client)}",
        origin=("renewals.events", "renewal.approaching"),
    )


def columns(store: SqlStore) -> list[tuple[str, str]]:
    """Every text or binary column of every table, read from the database's own catalogue."""
    if store.kind == "sqlite":
        tables = [row[0] for row in store.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return [
            (table, row[1])
            for table in tables
            for row in store.execute(f"PRAGMA table_info({table})").fetchall()
            if row[2].upper() in {"TEXT", "BLOB", ""}
        ]
    rows = store.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND data_type IN ('text', 'bytea', 'character varying', 'json', 'jsonb')"
    ).fetchall()
    return [(table, column) for table, column in rows]


def traces(store: SqlStore, *needles: str) -> dict[str, list[str]]:
    """Per needle, every `table.column` holding it in any row (any case)."""
    found: dict[str, list[str]] = {needle: [] for needle in needles}
    for table, column in columns(store):
        for (value,) in store.execute(f"SELECT {column} FROM {table}").fetchall():
            if value is None:
                continue
            text = (bytes(value).decode("utf-8", "replace") if not isinstance(value, str) else value).lower()
            for needle in needles:
                if needle.lower() in text and f"{table}.{column}" not in found[needle]:
                    found[needle].append(f"{table}.{column}")
    return found


def dump(store: SqlStore) -> dict[str, list[tuple[object, ...]]]:
    tables = {table for table, _ in columns(store)}
    return {table: sorted(map(repr, store.execute(f"SELECT * FROM {table}").fetchall())) for table in tables}


def test_the_scan_finds_every_seeded_place_before_erasure(store: SqlStore, people: People) -> None:
    """The control: before any erasure the generic scan finds the address in the projection, the ledger, the history, the outbox and the dead letters."""
    found = traces(store, people.dora)[people.dora]
    assert {
        "owner_settings.contact",
        "decision_makers.contact",
        "reminder_ledger.to_address",
        "reminder_ledger.detail",
        "owner_history.contact_after",
        "outbox.body",
        "dead_letters.body",
        "dead_letters.headers",
        "dead_letters.properties",
        "dead_letters.detail",
        "dead_letters.search_text",
        "dead_letter_history.text",
        "dead_letter_audit.selection",
        "dead_letter_edits.body_after",
    } <= set(found)


def test_a_preview_counts_table_by_table_and_changes_nothing(store: SqlStore, people: People) -> None:
    """A preview by address names each table and action it would change, with the counts, and leaves every row as it was."""
    before = dump(store)
    report = preview(store, SETTINGS, subject_of(None, people.dora.upper()))
    assert dump(store) == before
    assert report.operation_id is None and report.pending == 0
    assert report.counts == {
        "owner_settings": {"scrubbed": 1},
        "decision_makers": {"deleted": 1},
        "reminder_ledger": {"scrubbed": 1},
        "owner_history": {"scrubbed": 1},
        "outbox": {"deleted": 1},
        "dead_letters": {"tombstoned": 1},
        "dead_letter_history": {"scrubbed": 1},
        "dead_letter_audit": {"scrubbed": 1},
        "dead_letter_edits": {"deleted": 2},
    }
    assert any(people.partner not in line and "backups" in line for line in report.beyond)


def test_erasing_an_address_leaves_no_trace_keeps_tombstones_and_one_audit_row(
    store: SqlStore, people: People
) -> None:
    """After `forget --email`, no column of any table holds the address or the name beside it; the letter stays as an archived tombstone with an `erased` history entry; one audit row holds the counts and the address's SHA-256 only; the other client's data is untouched."""
    subject = subject_of(None, people.dora)
    letters_before = DeadLetterRecords(store).count(LetterFilter(statuses=frozenset(STATUSES)))
    report = forget(store, SETTINGS, subject, "ops")
    assert report.operation_id and report.counts["dead_letters"] == {"tombstoned": 1}
    assert traces(store, people.dora, people.dora_name) == {people.dora: [], people.dora_name: []}
    assert traces(store, people.olga)[people.olga]  # another person's data stays
    records = DeadLetterRecords(store)
    assert records.count(LetterFilter(statuses=frozenset(STATUSES))) == letters_before
    tombstone = records.find(event_id(people.client))[0]
    assert tombstone.body == b"" and tombstone.summary.status == "archived"
    assert tombstone.erasure is not None and tombstone.erasure.operation_id == report.operation_id
    assert tombstone.headers == {
        "x-client": people.client.encode(),
        "x-contact": subject.pseudonym,
        "x-first-death-queue": "renewals.worker",
    }
    assert tombstone.properties == {
        "message_id": f"m-{event_id(people.client)}",
        "reply_to": subject.pseudonym,
    }
    assert subject.pseudonym in tombstone.summary.detail
    [audit] = store.execute(
        "SELECT operation_id, actor, subject_kind, subject_sha256, counts FROM erasures"
    ).fetchall()
    assert audit[:4] == (report.operation_id, "ops", "email", subject.sha256)
    assert json.loads(audit[4]) == report.counts
    # The partner-wide setting keeps its owner, without the contact it named; the ledger its row.
    setting = store.execute(
        "SELECT owner, contact FROM owner_settings WHERE partner_id = ? AND client_id = ?",
        (people.partner, people.client),
    ).fetchone()
    assert tuple(setting) == ("partner", None)
    [(to_address,)] = store.execute(
        "SELECT to_address FROM reminder_ledger WHERE client_id = ?", (people.client,)
    ).fetchall()
    assert to_address == subject.pseudonym


def test_erasing_a_client_leaves_no_trace_of_it_or_its_decision_maker(
    store: SqlStore, people: People
) -> None:
    """After `forget --client`, neither the client id nor its decision maker's address or name is in any column; its ledger and history rows are kept under its pseudonym; the partner's contact and the other client stay."""
    subject = subject_of(people.client, None, people.partner)
    report = forget(store, SETTINGS, subject, "ops")
    assert report.counts["owner_settings"] == {"deleted": 1}
    assert report.counts["reminder_ledger"] == {"pseudonymised": 1}
    assert report.counts["dead_letters"] == {"tombstoned": 1}
    assert traces(store, people.client, people.dora, people.dora_name) == {
        people.client: [],
        people.dora: [],
        people.dora_name: [],
    }
    left = traces(store, people.paul, people.other_client, people.olga)
    assert all(left.values()), left
    kept = store.execute(
        "SELECT count(*) FROM reminder_ledger WHERE client_id = ?", (subject.pseudonym,)
    ).fetchone()
    assert kept[0] == 1


def test_a_second_erasure_finds_nothing_and_is_recognised(store: SqlStore, people: People) -> None:
    """Erasing the same address again changes nothing and the preview names the earlier erasure by its operation id."""
    subject = subject_of(None, people.dora)
    first = forget(store, SETTINGS, subject, "ops")
    again = preview(store, SETTINGS, subject)
    assert again.counts == {} and [e.operation_id for e in again.earlier] == [first.operation_id]


def test_a_notification_waiting_in_the_outbox_stops_the_erasure(store: SqlStore, people: People) -> None:
    """A notification naming the person not yet published: the erasure refuses and changes nothing; the preview counts it."""
    with store.writing():
        store.execute(
            "INSERT INTO outbox (notification_id, correlation_id, routing_key, body, created_at_us)"
            " VALUES ('n-2', 'c-2', 'renewal.notification', ?, 1)",
            (json.dumps({"to": [people.dora]}).encode(),),
        )
    before = dump(store)
    assert preview(store, SETTINGS, subject_of(None, people.dora)).pending == 1
    with pytest.raises(NotificationsPending, match="1 notification naming them still waits"):
        forget(store, SETTINGS, subject_of(None, people.dora), "ops")
    assert dump(store) == before


def test_a_tombstone_says_erased_in_dlq_show_and_is_never_replayed(
    store: SqlStore, people: People, store_url: str
) -> None:
    """`dlq show` prints "erased ... (operation X)" where the body was, its JSON names the operation, and a replay plan skips the letter as erased."""
    report = forget(store, SETTINGS, subject_of(None, people.dora), "ops")
    env = {"RENEWALS_STORE_URL": store_url}
    shown = CliRunner().invoke(main, ["dlq", "show", event_id(people.client)], env=env)
    assert shown.exit_code == 0, shown.output
    assert "erased " in shown.output and f"(operation {report.operation_id})" in shown.output
    assert people.dora not in shown.output
    as_json = CliRunner().invoke(main, ["dlq", "show", event_id(people.client), "--json"], env=env)
    assert json.loads(as_json.stdout)["erased_by"] == report.operation_id
    tombstone = DeadLetterRecords(store).find(event_id(people.client))[0]
    assert cut(tombstone) == f"erased by operation {report.operation_id}: never replayed"


def test_a_client_with_a_partner_takes_only_that_partner_s_rows(store: SqlStore, people: People) -> None:
    """`--client C --partner P`: C's owner setting and ledger row under another partner stay as they were; P's are erased."""
    with store.writing():
        store.execute(
            "INSERT INTO owner_settings VALUES ('beta', ?, 'platform', NULL, 1, 'e-beta')", (people.client,)
        )
        store.execute(
            "INSERT INTO reminder_ledger (event_id, partner_id, client_id, renewal_date, days_until_renewal,"
            " handled_at_us, outcome) VALUES ('e-beta', 'beta', ?, '2027-01-31', 30, 1, 'partner_handles')",
            (people.client,),
        )
    report = forget(store, SETTINGS, subject_of(people.client, None, people.partner), "ops")
    assert report.counts["owner_settings"] == {"deleted": 1}
    assert report.counts["reminder_ledger"] == {"pseudonymised": 1}
    for table in ("owner_settings", "reminder_ledger"):
        kept = store.execute(
            f"SELECT partner_id FROM {table} WHERE client_id = ?", (people.client,)
        ).fetchall()
        assert [tuple(row) for row in kept] == [("beta",)]


def test_the_same_letter_drained_again_is_not_stored_whole(store: SqlStore, people: People) -> None:
    """A tombstone keeps the letter's key: the same letter arriving from the queue again is recognised, and the body stays erased."""
    forget(store, SETTINGS, subject_of(None, people.dora), "ops")
    records = DeadLetterRecords(store)
    records.insert([letter(people.client, people.dora, people.dora_name, people.partner)])
    assert [found.body for found in records.find(event_id(people.client))] == [b""]
    assert traces(store, people.dora) == {people.dora: []}
