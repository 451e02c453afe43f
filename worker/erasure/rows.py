"""Where the store keeps a subject's data outside the dead letters and the outbox, and what an
erasure does there: each place an `Edit`, found first and applied later in the same transaction,
so that a preview counts exactly what an erasure changes.

A client's own rows (by client id; with a partner, only that partner's): its owner settings, its
decision maker and its reminder keys are deleted (a later event sets them again); its ledger and
owner-history rows are kept for counts, under the client's pseudonym, without addresses,
contacts or detail. A mention anywhere else (an address in a contact, a ledger row, a note, an
audit selection) is scrubbed: a contact that names it is cleared (a decision maker, which cannot
be, is deleted), an address column takes the pseudonym, free text has the mention replaced.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from events import Contact
from worker.erasure.subject import Subject
from worker.store.sql import SqlStore

Action = Literal["deleted", "pseudonymised", "scrubbed", "tombstoned"]
Treatment = Literal["delete", "null", "pseudonym", "json", "text"]


@dataclass(frozen=True)
class Edit:
    """One statement of an erasure: what it does to how many rows of which table."""

    table: str
    action: Action
    rows: int
    statement: str
    params: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Place:
    """A table that may mention a subject: its key, what each column that does becomes, and
    whether its rows belong to a client (`client_id`: a client's erasure leaves another's alone)."""

    table: str
    key: tuple[str, ...]
    columns: dict[str, Treatment]
    of_a_client: bool = False


PLACES = (
    Place("owner_settings", ("partner_id", "client_id"), {"contact": "null"}, of_a_client=True),
    Place("decision_makers", ("client_id",), {"contact": "delete"}, of_a_client=True),
    Place(
        "reminder_ledger",
        ("seq",),
        {
            "to_address": "pseudonym",
            "cc_address": "pseudonym",
            "decision_maker": "pseudonym",
            "detail": "json",
            "reason": "text",
            "fallback": "text",
        },
        of_a_client=True,
    ),
    Place("owner_history", ("seq",), {"contact_before": "null", "contact_after": "null"}, of_a_client=True),
    Place("dead_letter_history", ("seq",), {"text": "text"}),
    Place("dead_letter_audit", ("seq",), {"selection": "text", "result": "text"}),
    Place("dead_letter_replays", ("id",), {"selection": "text"}),
    Place("dead_letter_groups", ("fingerprint",), {"pattern": "text"}),
)
OPERATORS_WORDS = frozenset(
    {"dead_letter_history", "dead_letter_audit", "dead_letter_replays", "dead_letter_groups"}
)


def client_rows(db: SqlStore, subject: Subject) -> Iterator[Edit]:
    """The client's own rows: deleted from the projection, pseudonymised in ledger and history."""
    if subject.kind != "client":
        return
    mine, params = "client_id = ?", (subject.value,)
    with_partner = (mine + " AND partner_id = ?", (*params, subject.partner)) if subject.partner else None
    for table, (where, values) in (
        ("owner_settings", with_partner or (mine, params)),
        ("decision_makers", (mine, params)),
        ("reminders", (mine, params)),
    ):
        yield Edit(
            table, "deleted", _count(db, table, where, values), f"DELETE FROM {table} WHERE {where}", values
        )
    for table, cleared in (
        ("reminder_ledger", "to_address = NULL, cc_address = NULL, decision_maker = NULL, detail = NULL"),
        ("owner_history", "contact_before = NULL, contact_after = NULL"),
    ):
        where, values = with_partner or (mine, params)
        yield Edit(
            table,
            "pseudonymised",
            _count(db, table, where, values),
            f"UPDATE {table} SET client_id = ?, {cleared} WHERE {where}",
            (subject.pseudonym, *values),
        )


def mentions(db: SqlStore, subject: Subject, contacts: Sequence[Subject] = ()) -> Iterator[Edit]:
    """Every other row that names the subject, one edit each (a client's own rows excepted);
    the `contacts` of an erased client are scrubbed from the operators' words only (notes, audit
    and replay selections, group patterns), not from another client's rows."""
    for place in PLACES:
        among = (subject, *contacts) if place.table in OPERATORS_WORDS else (subject,)
        yield from _mentions_in(db, among, place)


def contacts_of(db: SqlStore, subject: Subject) -> list[Subject]:
    """The addresses of a client's own contacts (its decision maker, its owner settings'), which
    its erasure takes with it; none for an address."""
    if subject.kind != "client":
        return []
    found = db.execute(
        "SELECT contact FROM decision_makers WHERE client_id = ?"
        " UNION SELECT contact FROM owner_settings WHERE client_id = ? AND contact IS NOT NULL",
        (subject.value, subject.value),
    ).fetchall()
    addresses = set()
    for (text,) in found:
        try:
            addresses.add(Contact.model_validate_json(text).email.lower())
        except ValueError:  # a contact another release wrote: nothing to take from it
            continue
    return [Subject("email", address) for address in sorted(addresses)]


def _mentions_in(db: SqlStore, subjects: Sequence[Subject], place: Place) -> Iterator[Edit]:
    columns = list(place.columns)
    # A cheap filter first (LIKE finds a superset of the whole-token matches), then the exact test.
    tests, params = [], []
    for subject in subjects:
        token = subject.value.lower() if subject.kind == "email" else subject.value
        pattern = "%" + token.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        spelled = "lower({})" if subject.kind == "email" else "{}"
        tests += [f"{spelled.format(column)} LIKE ? ESCAPE '\\'" for column in columns]
        params += [pattern] * len(columns)
    where = "(" + " OR ".join(tests) + ")"
    first = subjects[0]
    if first.kind == "client" and place.of_a_client:
        where, params = where + " AND client_id <> ?", [*params, first.value]
    keys = ", ".join(place.key)
    rows = db.execute(
        f"SELECT {keys}, {', '.join(columns)} FROM {place.table} WHERE {where}", params
    ).fetchall()
    matching = " AND ".join(f"{column} = ?" for column in place.key)
    for row in rows:
        key, values = tuple(row[: len(place.key)]), dict(zip(columns, row[len(place.key) :], strict=True))
        named = {
            column: value for column, value in values.items() if any(s.mentioned_in(value) for s in subjects)
        }
        if not named:
            continue
        if any(place.columns[column] == "delete" for column in named):
            yield Edit(place.table, "deleted", 1, f"DELETE FROM {place.table} WHERE {matching}", key)
            continue
        changed = {
            column: _treated(subjects, place.columns[column], value) for column, value in named.items()
        }
        assignments = ", ".join(f"{column} = ?" for column in changed)
        yield Edit(
            place.table,
            "scrubbed",
            1,
            f"UPDATE {place.table} SET {assignments} WHERE {matching}",
            (*changed.values(), *key),
        )


def _treated(subjects: Sequence[Subject], treatment: Treatment, value: str) -> str | None:
    if treatment == "null":
        return None
    if treatment == "pseudonym":
        return next(s.pseudonym for s in subjects if s.mentioned_in(value))
    for subject in subjects:
        value = subject.scrubbed_json(value) if treatment == "json" else subject.scrubbed(value)
    return value


def _count(db: SqlStore, table: str, where: str, params: tuple[Any, ...]) -> int:
    return int(db.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0])
