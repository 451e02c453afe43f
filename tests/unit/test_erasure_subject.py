"""Whose data an erasure takes: the whole-token match, the pseudonym, and the operator's mistakes."""

import json

import pytest

from worker.erasure import InvalidSubject, subject_of


def test_an_address_is_found_in_any_case_as_a_whole_token_only() -> None:
    """dora@example.com is found as DORA@Example.com and before a full stop, not inside adora@example.com or dora@example.community."""
    dora = subject_of(None, " Dora@Example.com ")
    assert dora.value == "dora@example.com"
    assert dora.mentioned_in("write to DORA@Example.com.")
    assert dora.mentioned_in(b'{"to": ["dora@example.com"]}')
    assert not dora.mentioned_in("adora@example.com")
    assert not dora.mentioned_in("dora@example.community")


def test_a_client_id_is_found_as_a_whole_token_and_case_matters() -> None:
    """Client c-42 is found in JSON and prose, not in c-420, xc-42 or C-42."""
    client = subject_of("c-42", None)
    assert client.mentioned_in('{"client_id": "c-42"}') and client.mentioned_in("client c-42.")
    assert not any(client.mentioned_in(text) for text in ("c-420", "xc-42", "C-42"))


def test_the_pseudonym_is_stable_and_differs_by_kind() -> None:
    """The same subject always has the same pseudonym; a client and an address of the same text do not share one."""
    assert subject_of("a@b.se", None).pseudonym != subject_of(None, "a@b.se").pseudonym
    assert subject_of(None, "A@B.se").pseudonym == subject_of(None, "a@b.se").pseudonym
    assert (
        subject_of("c-1", None).pseudonym.startswith("erased:")
        and len(subject_of("c-1", None).pseudonym) == 23
    )


def test_scrubbing_json_replaces_a_contact_whole_and_keeps_the_rest() -> None:
    """A contact naming the address becomes the pseudonym (its name with it); other values stay, text mentions are replaced."""
    dora = subject_of(None, "dora@example.com")
    document = {
        "to": [{"email": "dora@example.com", "name": "Dora"}],
        "rule_row": 3,
        "why": "dm dora@example.com",
    }
    scrubbed = json.loads(dora.scrubbed_json(json.dumps(document)))
    assert scrubbed == {"to": [dora.pseudonym], "rule_row": 3, "why": f"dm {dora.pseudonym}"}


@pytest.mark.parametrize(
    ("client", "email", "partner", "wording"),
    [
        (None, None, None, "say whose data to erase"),
        ("c-1", "a@b.se", None, "say whose data to erase"),
        (None, "a@b", None, "is not an e-mail address"),
        (None, "a@b.se", "p", "--partner goes with --client"),
        ("c\x1b1", None, None, "is not a client id"),
        ("c-1", None, "", "is not a partner id"),
    ],
)
def test_a_mistake_is_one_specific_sentence(
    client: str | None, email: str | None, partner: str | None, wording: str
) -> None:
    """Neither or both, a bad address, a partner without a client, an id with a control character or an empty one: InvalidSubject saying which."""
    with pytest.raises(InvalidSubject, match=wording):
        subject_of(client, email, partner)
