"""docs/domain.md and the code agree: its rule table and reasons table are read and checked here."""

from pathlib import Path
from typing import get_args

import pytest

from events import Contact, Recipient
from events.errors import Reason
from handlers import NoRecipient, OwnerSetting, resolve_recipients

DOCUMENT = Path(__file__).resolve().parents[2] / "docs" / "domain.md"
RULE_TABLE = "### The rule table"
REASONS_TABLE = "### Reasons"
RULE_COLUMNS = ["owner", "partner contact", "decision maker known", "to", "cc", "audience", "fallback"]
EXPECTED_RULE_ROWS = 5
EMPTY = {"", "-", "\N{EN DASH}"}

DECISION_MAKER = Contact(email="dora@client.example", name="Dora", user_id="u-dora")
PARTNER_CONTACT = Contact(email="alice@partner.example", name="Alice", user_id="u-alice")
PEOPLE = {
    "decision maker": Recipient(role="decision_maker", **DECISION_MAKER.model_dump()),
    "partner contact": Recipient(role="partner_contact", **PARTNER_CONTACT.model_dump()),
}
CONTACTS = {"set": PARTNER_CONTACT, "none": None}
DECISION_MAKERS = {"yes": [DECISION_MAKER], "no": [None], "any": [DECISION_MAKER, None]}


def table_under(heading: str) -> list[dict[str, str]]:
    """The first markdown table after `heading`: one dict per row, keyed by the header, backticks removed."""
    lines = DOCUMENT.read_text(encoding="utf-8").splitlines()
    assert heading in lines, f"docs/domain.md has no heading {heading!r}"
    rows: list[list[str]] = []
    for line in lines[lines.index(heading) + 1 :]:
        if line.startswith("|"):
            rows.append([cell.strip().replace("`", "") for cell in line.strip().strip("|").split("|")])
        elif rows:
            break
    header, _separator, *body = rows
    return [dict(zip(header, row, strict=True)) for row in body]


RULE_ROWS = table_under(RULE_TABLE)


def row_id(row: dict[str, str]) -> str:
    return f"{row['owner']}-contact_{row['partner contact']}-dm_{row['decision maker known']}"


def people(cell: str) -> tuple[Recipient, ...]:
    return () if cell in EMPTY else (PEOPLE[cell],)


@pytest.mark.parametrize("row", RULE_ROWS, ids=row_id)
def test_each_rule_table_row_is_what_resolve_recipients_does(row: dict[str, str]) -> None:
    """The row's owner, contact and decision maker give exactly its to, cc, audience and fallback (or NoRecipient)."""
    setting = OwnerSetting(row["owner"], CONTACTS[row["partner contact"]])  # type: ignore[arg-type]
    for decision_maker in DECISION_MAKERS[row["decision maker known"]]:
        if row["to"].startswith("nobody"):
            with pytest.raises(NoRecipient) as caught:
                resolve_recipients(setting, decision_maker)
            assert caught.value.reason in row["to"]
            continue
        got = resolve_recipients(setting, decision_maker)
        expected_fallback = None if row["fallback"] in EMPTY else row["fallback"]
        assert (got.to, got.cc, got.audience, got.fallback) == (
            people(row["to"]),
            people(row["cc"]),
            row["audience"],
            expected_fallback,
        ), decision_maker


def test_the_rule_table_has_its_columns_and_every_row() -> None:
    """A renamed column or a deleted row is noticed, not silently tested less."""
    assert [list(row) for row in RULE_ROWS] == [RULE_COLUMNS] * EXPECTED_RULE_ROWS


def test_the_rule_table_covers_every_possible_situation_once() -> None:
    """Each owner, contact and decision-maker combination the input allows has exactly one row."""
    known = {"yes": ["yes"], "no": ["no"], "any": ["yes", "no"]}
    situations = [
        (row["owner"], row["partner contact"], dm)
        for row in RULE_ROWS
        for dm in known[row["decision maker known"]]
    ]
    possible = [("platform", contact, dm) for contact in ("set", "none") for dm in ("yes", "no")]
    possible += [("partner", "set", dm) for dm in ("yes", "no")]  # partner without contact is refused input
    assert sorted(situations) == sorted(possible)


def test_every_dead_letter_reason_is_in_the_reasons_table() -> None:
    """Each reason the worker writes (Reason, and retries_exhausted) is explained in the document."""
    documented = {row["reason"] for row in table_under(REASONS_TABLE)}
    assert {*get_args(Reason), "retries_exhausted"} - documented == set()


def test_the_reasons_table_names_only_real_reasons() -> None:
    """The document lists no reason the worker or the broker cannot give (the broker's is delivery_limit)."""
    documented = {row["reason"] for row in table_under(REASONS_TABLE)}
    assert documented == {*get_args(Reason), "retries_exhausted", "delivery_limit"}
