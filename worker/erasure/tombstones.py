"""The subject in messages the store holds: the outbox and the dead letters.

A dead letter that names the subject (its body, a header, a property, its detail) becomes a
tombstone: the body is emptied (its recorded size is kept), headers, properties and the detail
keep their words with each mention replaced (a header table or list that names it is dropped), and a
history entry of kind `erased` says when and under which operation. A letter still new is
archived (there is nothing left to replay); any other keeps its status, so counts stay true.

The outbox holds notifications the broker has not confirmed yet (a confirmed one is deleted at
once). One set aside (it could never be encoded) is deleted. One still to be published is not
touched: the erasure refuses while any waits (see `pending`), because deleting it would drop a
reminder silently while a publisher may hold it already; it leaves within seconds of a running
worker, and the erasure can then be run again.
"""

from collections.abc import Iterator, Sequence
from typing import Any

from worker.erasure.rows import Edit
from worker.erasure.subject import Subject
from worker.store import amqp_json
from worker.store.sql import SqlStore

BATCH = 500
_LETTER_COLUMNS = (
    "id, status, event_id, event_type, reason, detail, message_id, origin_exchange, origin_routing_key,"
    " body, headers, properties, problem, search_text"
)
_NAMES = _LETTER_COLUMNS.replace(" ", "").split(",")


def outbox(db: SqlStore, subject: Subject) -> tuple[list[Edit], int]:
    """Deletions of the set-aside notifications that name the subject, and how many others
    that name it still wait to be published."""
    edits, pending = [], 0
    for seq, body, set_aside in db.execute("SELECT seq, body, set_aside FROM outbox ORDER BY seq").fetchall():
        if not subject.mentioned_in(bytes(body)):
            continue
        if set_aside is None:
            pending += 1
        else:
            edits.append(Edit("outbox", "deleted", 1, "DELETE FROM outbox WHERE seq = ?", (seq,)))
    return edits, pending


def letters_naming(db: SqlStore, subject: Subject, *, after: int = 0) -> tuple[list[int], int]:
    """The ids of the dead letters after `after` that name the subject, and the last id read.
    The long read: `forget` does it before taking the write lock, then reads again only those
    letters and any that arrived since (`after`)."""
    found, last = [], after
    while True:
        rows = db.execute(
            f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE id > ? ORDER BY id LIMIT ?", (last, BATCH)
        ).fetchall()
        found += [row[0] for row in rows if _letter_names(subject, _letter(row))]
        if len(rows) < BATCH:
            return found, rows[-1][0] if rows else last
        last = rows[-1][0]


def dead_letters(
    db: SqlStore,
    subject: Subject,
    contacts: Sequence[Subject],
    letter_ids: Sequence[int],
    *,
    operation_id: str,
    actor: str,
    at_us: int,
) -> Iterator[Edit]:
    """A tombstone, and its history entry, for each of the letters that still names the subject;
    what it keeps (detail, headers, properties) is without the subject and the client's `contacts`."""
    for letter_id in letter_ids:
        row = db.execute(f"SELECT {_LETTER_COLUMNS} FROM dead_letters WHERE id = ?", (letter_id,)).fetchone()
        if row is not None and _letter_names(subject, letter := _letter(row)):
            everyone = (subject, *contacts)
            yield from _tombstone(everyone, letter, operation_id=operation_id, actor=actor, at_us=at_us)


def edit_records(
    db: SqlStore, subject: Subject, contacts: Sequence[Subject], letter_ids: Sequence[int]
) -> Iterator[Edit]:
    """The before and after of edits (`dead_letter_edits`, worker/dead_letters/edits.py) that are
    the tombstoned letters' or name the subject or the client's `contacts` (an edit may have
    added the address): deleted whole, as they would be with their letter. The audit row of each
    edit stays; it holds no body."""
    tombstoned = set(letter_ids)
    everyone = (subject, *contacts)
    doomed: list[int] = []
    last = 0
    while True:
        rows = db.execute(
            "SELECT seq, letter_id, body_before, body_after, headers_before, headers_after"
            " FROM dead_letter_edits WHERE seq > ? ORDER BY seq LIMIT ?",
            (last, BATCH),
        ).fetchall()
        for seq, letter_id, *kept in rows:
            texts = [bytes(kept[0]), bytes(kept[1])]
            if (
                letter_id in tombstoned
                or any(who.mentioned_in(text) for who in everyone for text in texts)
                or any(_stored_names(who, text) for who in everyone for text in kept[2:])
            ):
                doomed.append(seq)
        if len(rows) < BATCH:
            break
        last = rows[-1][0]
    for seq in doomed:
        yield Edit("dead_letter_edits", "deleted", 1, "DELETE FROM dead_letter_edits WHERE seq = ?", (seq,))


def _letter(row: Sequence[Any]) -> dict[str, Any]:
    return dict(zip(_NAMES, row, strict=True))


def _letter_names(subject: Subject, letter: dict[str, Any]) -> bool:
    texts = [
        bytes(letter["body"]),
        letter["detail"],
        letter["problem"],
        letter["search_text"],
        letter["message_id"],
    ]
    found = any(subject.mentioned_in(text) for text in texts) or any(
        _stored_names(subject, letter[name]) for name in ("headers", "properties")
    )
    if found and subject.partner is not None:  # only that partner's client: its id must be there too
        partner = Subject("client", subject.partner)
        return any(partner.mentioned_in(text) for text in texts) or any(
            _stored_names(partner, letter[name]) for name in ("headers", "properties")
        )
    return found


def _stored_names(subject: Subject, stored: str | None) -> bool:
    """Whether stored headers or properties name the subject. Their JSON text is searched as it
    is unless it holds what JSON text hides: bytes (base64), escaped characters; then decoded."""
    if not stored:
        return False
    if "$b" not in stored and "\\" not in stored and '"' not in subject.value:
        return subject.mentioned_in(stored)
    return subject.in_value(_decoded(stored))


def _tombstone(
    subjects: Sequence[Subject], letter: dict[str, Any], *, operation_id: str, actor: str, at_us: int
) -> Iterator[Edit]:
    headers, properties = (
        amqp_json.dumps(_kept(subjects, _decoded(letter[name]))) for name in ("headers", "properties")
    )
    detail = _scrubbed(subjects, letter["detail"])
    message_id = None if any(s.mentioned_in(letter["message_id"]) for s in subjects) else letter["message_id"]
    searched = [letter["event_id"], letter["event_type"], letter["reason"], detail, message_id]
    searched += [letter["origin_exchange"], letter["origin_routing_key"]]
    search_text = _scrubbed(subjects, "\n".join(part for part in searched if part).lower())
    problem = None if letter["problem"] is None else _scrubbed(subjects, letter["problem"])
    yield Edit(
        "dead_letters",
        "tombstoned",
        1,
        "UPDATE dead_letters SET body = ?, body_sha256 = NULL, headers = ?, properties = ?, detail = ?,"
        " search_text = ?, problem = ?, message_id = ?,"
        " status = CASE WHEN status = 'new' THEN 'archived' ELSE status END,"
        " resolved_at_us = COALESCE(resolved_at_us, ?) WHERE id = ?",
        (b"", headers, properties, detail, search_text, problem, message_id, at_us, letter["id"]),
    )
    was = letter["status"]
    text = "body erased, every mention of the subject replaced" + (
        "; archived (nothing left to replay)" if was == "new" else f"; still {was}"
    )
    yield Edit(
        "dead_letter_history",
        "tombstoned",
        0,  # the entry is the tombstone's mark; the letter is what is counted
        "INSERT INTO dead_letter_history (letter_id, at_us, kind, actor, operation_id, text)"
        " VALUES (?, ?, 'erased', ?, ?, ?)",
        (letter["id"], at_us, actor, operation_id, text),
    )


def _decoded(text: str | None) -> Any:
    """Stored properties or headers as values ({} for none, or for any the store cannot read)."""
    if not text:
        return {}
    try:
        return amqp_json.loads(text)
    except (ValueError, RecursionError):
        return {"unreadable": text}


def _kept(subjects: Sequence[Subject], values: Any) -> dict[str, Any]:
    """The headers or properties without the subjects: text (or bytes) has each mention
    replaced, so an `x-error-detail` still explains; a table or list that names one is dropped."""
    if not isinstance(values, dict):
        return {}
    kept: dict[str, Any] = {}
    for name, value in values.items():
        if any(subject.mentioned_in(str(name)) for subject in subjects):
            continue
        if isinstance(value, str):
            kept[name] = _scrubbed(subjects, value)
        elif isinstance(value, bytes):
            text = value.decode("utf-8", "replace")
            kept[name] = _scrubbed(subjects, text).encode() if _names_any(subjects, text) else value
        elif not any(subject.in_value(value) for subject in subjects):
            kept[name] = value
    return kept


def _names_any(subjects: Sequence[Subject], text: str) -> bool:
    return any(subject.mentioned_in(text) for subject in subjects)


def _scrubbed(subjects: Sequence[Subject], text: str) -> str:
    for subject in subjects:
        text = subject.scrubbed(text)
    return text
