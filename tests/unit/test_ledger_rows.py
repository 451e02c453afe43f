"""The ledger's pure parts: the rule table's row numbers, the replay headers it trusts, and the
basis a reminder is decided on, against an in-memory projection."""

import pytest

from events import Contact, RenewalApproaching, parse
from handlers import NoRecipient, OwnerSetting, basis_of, resolve_recipients, rule_row
from support.messages import contact, encode, owner_changed, renewal
from tests.fakes import InMemoryProjection
from tests.unit.test_domain_document import CONTACTS, DECISION_MAKERS, RULE_ROWS, row_id
from tests.unit.test_rules import apply
from worker.service.ledger import _addresses, _letter_id, _operation


@pytest.mark.parametrize("row", RULE_ROWS, ids=row_id)
def test_rule_row_numbers_each_row_of_the_domain_documents_table(row: dict[str, str]) -> None:
    """Every situation of the table's n-th row (counted from 1) is row n."""
    setting = OwnerSetting(row["owner"], CONTACTS[row["partner contact"]])  # type: ignore[arg-type]
    for decision_maker in DECISION_MAKERS[row["decision maker known"]]:
        assert rule_row(setting, decision_maker) == RULE_ROWS.index(row) + 1


def test_partner_without_a_contact_counts_as_the_row_that_names_nobody() -> None:
    """The case OwnerChanged refuses is numbered as the code treats it: row 4, no_recipient."""
    setting = OwnerSetting("partner", None)
    with pytest.raises(NoRecipient):
        resolve_recipients(setting, Contact(email="d@client.example", name="D", user_id="u"))
    assert (
        rule_row(setting, None) == rule_row(setting, Contact(email="d@x.example", name="D", user_id="u")) == 4
    )


def test_the_basis_names_the_remembered_decision_maker_and_the_event_that_named_them() -> None:
    """A reminder without a decision maker is decided on the remembered one, named by an
    earlier event; the setting's stamp is the change that set it."""
    projection = InMemoryProjection()
    apply(projection, owner_changed("platform", partner_contact=contact("alice"), id="o1"))
    apply(projection, renewal("c1", decision_maker=contact("dora", "client.example"), id="r1"))
    event = parse(encode(renewal("c1", id="r2")), "application/json")
    assert isinstance(event, RenewalApproaching)
    basis = basis_of(event, projection=projection)
    assert basis.decision_maker is not None and basis.decision_maker.email == "dora@client.example"
    assert (basis.decision_maker_event_id, basis.rule_row) == ("r1", 1)
    assert basis.effective.stamp is not None and basis.effective.stamp.event_id == "o1"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (7, 7),
        ("7", 7),
        (b"12", 12),
        (2**63 - 1, 2**63 - 1),
        (2**63, None),
        ("9" * 20, None),
        (0, None),
        (-3, None),
        (True, None),
        ("٣", None),  # a digit, but not an ASCII one
        (1.5, None),
        (None, None),
        ({"id": 1}, None),
    ],
)
def test_only_a_letter_id_the_store_could_hold_is_trusted(value: object, expected: int | None) -> None:
    """The replay header's letter id: a positive 64-bit whole number, as a number or digits."""
    assert _letter_id(value) == expected


def test_a_replay_operation_is_kept_only_when_short_and_printable() -> None:
    """An operation id the replay tools could have written is kept; anything else is not."""
    assert _operation("op-1") == "op-1"
    assert _operation(b"op-2") == "op-2"
    assert [_operation(value) for value in ("", "x" * 201, "a\nb", 5, None)] == [None] * 5


def test_one_address_is_written_as_the_list_of_them_would_be() -> None:
    """The single-recipient shortcut gives what joining the list gives, and none gives nothing."""
    people = [Contact(email=f"p{n}@x.example", name="P", user_id=f"u{n}") for n in range(3)]
    for count in range(4):
        assert _addresses(people[:count]) == (", ".join(p.email for p in people[:count]) or None)
