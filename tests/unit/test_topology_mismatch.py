"""What a queue declared otherwise is told as: the broker's words, then a fix that follows from
what the broker holds, whichever argument RabbitMQ happens to compare first."""

import pytest

from worker.broker.topology import mismatch_message

QUEUE = "for queue 'renewals.worker' in vhost 'v'"


@pytest.mark.parametrize(
    ("reply", "asked", "existing"),
    [
        (  # 3.10, 4.0 and 4.3 name this one first for a quorum queue declared as classic
            f"PRECONDITION_FAILED - inequivalent arg 'x-dead-letter-strategy' {QUEUE}: received none"
            " but current is the value 'at-least-once' of type 'longstr'",
            "classic",
            "quorum",
        ),
        (  # ... and this one for a classic queue declared as quorum
            f"PRECONDITION_FAILED - inequivalent arg 'x-overflow' {QUEUE}: received the value"
            " 'reject-publish' of type 'longstr' but current is none",
            "quorum",
            "classic",
        ),
        (
            f"PRECONDITION_FAILED - inequivalent arg 'x-queue-type' {QUEUE}: received 'classic' but"
            " current is 'quorum'",
            "classic",
            "quorum",
        ),
    ],
)
def test_a_queue_of_the_other_type_names_the_setting_that_matches_it(
    reply: str, asked: str, existing: str
) -> None:
    """The line says which type the queue is and suggests that type, never the one already asked for."""
    line = mismatch_message(reply, asked)
    assert line.startswith(reply)
    assert f"exists as a {existing} queue" in line and f"RENEWALS_QUEUE_TYPE={existing}" in line
    assert f"RENEWALS_QUEUE_TYPE={asked}" not in line


def test_another_argument_gets_the_general_fix() -> None:
    """A difference that is not the queue type (a delivery limit, say) suggests no queue type."""
    reply = (
        f"PRECONDITION_FAILED - inequivalent arg 'x-delivery-limit' {QUEUE}: received the value '5'"
        " of type 'signedint' but current is the value '20' of type 'signedint'"
    )
    line = mismatch_message(reply, "quorum")
    assert line.startswith(reply) and "RENEWALS_QUEUE_TYPE" not in line
    assert "other arguments than these settings ask for" in line
