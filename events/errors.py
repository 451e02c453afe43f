"""The one error the contract raises: input that no retry can fix."""

from typing import Literal

Reason = Literal[
    "invalid_properties",
    "unsupported_content_encoding",
    "unsupported_content_type",
    "too_large",
    "invalid_json",
    "invalid_envelope",
    "invalid_payload",
    "unknown_event_type",
    "no_recipient",
]


class InvalidInput(Exception):
    """A message that can never be processed as it is: dead-letter it at once, with `reason`."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason: Reason = reason
        self.detail = detail
