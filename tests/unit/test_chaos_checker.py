"""The fault runner's checker counts what it claims to: fed the outputs its stream expects it
finds nothing, and each kind of fault planted in them shows up in the right column."""

import json
from dataclasses import replace
from typing import Any

import pytest

from support.chaos.checker import Verdict, check
from support.chaos.observe import Received
from support.chaos.rules import notification_id
from support.chaos.stream import Stream, build

STREAM = build(seed=11, size=400)


def notification(event_id: str, data: dict[str, Any]) -> Received:
    nid = notification_id(data["client_id"], data["renewal_date"], data["days_until_renewal"])
    body = {
        "id": nid,
        "type": "NotificationRequested",
        "data": data | {"notification_id": nid, "causation_id": event_id},
    }
    return Received(
        f"notification.requested.{data['audience']}", nid, event_id, {}, json.dumps(body).encode()
    )


def perfect(stream: Stream) -> tuple[list[Received], list[Received]]:
    """What a flawless worker gives: one notification per reminder (its first id), one dead
    letter per bad input, naming the input exchange."""
    notes = [notification(min(r.event_ids), r.data) for r in stream.reminders]
    dead = [
        Received("", None, None, {"x-error-reason": e.reason, "x-original-exchange": "renewals.events"}, body)
        for body, e in stream.dead_letters.items()
    ]
    return notes, dead


def totals(verdict: Verdict) -> dict[str, int]:
    columns = ("lost", "duplicated", "unexpected", "copies")
    return {column: sum(getattr(row, column) for row in verdict.rows) for column in columns}


def test_the_stream_holds_every_case_the_runner_promises() -> None:
    """Seeded and repeatable, with twins, repeats, reminders for nobody, forged headers and every bad-input class."""
    assert build(seed=11, size=400).phases == STREAM.phases
    kinds = {e.kind for e in STREAM.dead_letters.values()}
    assert {
        "property not UTF-8",
        "compression header",
        "nested 1000 deep",
        "forged notification",
        "too large",
    } <= kinds
    assert {"no recipient"} <= kinds and any(len(r.event_ids) == 2 for r in STREAM.reminders)
    assert STREAM.census["repeats (same id again)"] > 0 and STREAM.size >= 400


def test_flawless_outputs_pass_and_copies_are_allowed() -> None:
    """The expected outputs, with one notification and one dead letter delivered twice, pass with two copies counted."""
    notes, dead = perfect(STREAM)
    verdict = check(STREAM, [*notes, notes[0]], [*dead, dead[0]], {})
    assert verdict.ok, verdict.examples
    assert totals(verdict) == {"lost": 0, "duplicated": 0, "unexpected": 0, "copies": 2}


@pytest.mark.parametrize(
    ("plant", "column"),
    [
        ("drop a notification", "lost"),
        ("drop a dead letter", "lost"),
        ("notify a twin under both ids", "duplicated"),
        ("send one id with two contents", "duplicated"),
        ("address someone else", "unexpected"),
        ("notify a reminder for nobody", "unexpected"),
        ("trust a forged origin", "unexpected"),
        ("leave a message in the queue", "unexpected"),
    ],
)
def test_each_planted_fault_is_counted_in_its_column(plant: str, column: str) -> None:
    """Every kind of wrong output the checker promises to find is found, in the column it names."""
    notes, dead = perfect(STREAM)
    left: dict[str, int] = {}
    if plant == "drop a notification":
        notes.pop()
    elif plant == "drop a dead letter":
        dead.pop()
    elif plant == "notify a twin under both ids":
        twin = next(r for r in STREAM.reminders if len(r.event_ids) == 2)
        notes.append(notification(max(twin.event_ids), twin.data))
    elif plant == "send one id with two contents":
        first = json.loads(notes[0].body)
        first["time"] = "2030-01-01T00:00:00+00:00"
        notes.append(replace(notes[0], body=json.dumps(first).encode()))
    elif plant == "address someone else":
        data = json.loads(notes[0].body)["data"]
        data["to"] = [{"role": "decision_maker", "email": "eve@else.example", "name": None, "user_id": None}]
        notes[0] = notification(data["causation_id"], data)
    elif plant == "notify a reminder for nobody":
        body, _ = next((b, e) for b, e in STREAM.dead_letters.items() if e.reason == "no_recipient")
        event = json.loads(body)
        notes.append(
            notification(event["id"], STREAM.reminders[0].data | {"client_id": event["data"]["client_id"]})
        )
    elif plant == "trust a forged origin":
        index = next(i for i, d in enumerate(dead) if STREAM.dead_letters[d.body].forged_origin)
        dead[index] = replace(
            dead[index], headers=dead[index].headers | {"x-original-exchange": "renewals.notifications"}
        )
    else:
        left = {"renewals.worker": 1}
    verdict = check(STREAM, notes, dead, left)
    assert not verdict.ok and verdict.examples
    counted = {name: count for name, count in totals(verdict).items() if name != "copies" and count}
    assert counted == {column: 1}, (plant, verdict.table())
