"""Whose data an erasure takes (`Subject`): a client, or a person by e-mail address; how to tell
that a stored value mentions them, and what stands in their place (`pseudonym`).

A value mentions a subject when the client id, or the address (in any case), occurs in it as a
whole token: `c-42` is not found in `c-420`, nor `dora@example.com` in `adora@example.com`. The
pseudonym is `erased:` and the first 16 hex digits of the SHA-256 of the subject: stable, so rows
kept for counts still group together and a repeated request is recognised; it is a pseudonym,
not an anonymisation (anyone who holds the address can compute it).
"""

import hashlib
import json
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import TypeAdapter, ValidationError

from events.models import Email, Identifier
from worker.tools.errors import ToolError

SubjectKind = Literal["client", "email"]

_EMAIL: TypeAdapter[str] = TypeAdapter(Email)
_IDENTIFIER: TypeAdapter[str] = TypeAdapter(Identifier)
# What may stand beside a token without making it part of a longer one.
_ADDRESS_BEFORE = r"(?<![A-Za-z0-9._%+-])"
_ADDRESS_AFTER = r"(?![A-Za-z0-9-])"
_ID_BEFORE = r"(?<![A-Za-z0-9_@+-])"
_ID_AFTER = r"(?![A-Za-z0-9_@+-])"


class InvalidSubject(ToolError):
    """Neither or both of a client and an address, or a value that is not one."""


@dataclass(frozen=True)
class Subject:
    """A client (`partner`: only that partner's rows of it) or a person's e-mail address."""

    kind: SubjectKind
    value: str
    partner: str | None = None

    @cached_property
    def sha256(self) -> str:
        """The SHA-256 of the subject (kind and value), as the audit keeps it instead of the value."""
        return hashlib.sha256(f"{self.kind}:{self.value}".encode()).hexdigest()

    @property
    def pseudonym(self) -> str:
        return f"erased:{self.sha256[:16]}"

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        if self.kind == "email":
            return re.compile(_ADDRESS_BEFORE + re.escape(self.value) + _ADDRESS_AFTER, re.IGNORECASE)
        return re.compile(_ID_BEFORE + re.escape(self.value) + _ID_AFTER)

    def mentioned_in(self, value: str | bytes | None) -> bool:
        """Whether the text (bytes read as UTF-8) names the subject."""
        if value is None:
            return False
        text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        # A plain substring test first (fast); the token's boundaries only where it is found.
        if self.value not in (text.lower() if self.kind == "email" else text):
            return False
        return self._pattern.search(text) is not None

    def in_value(self, value: Any) -> bool:
        """Whether a decoded JSON or AMQP value (tables, lists, bytes, text) names the subject."""
        if isinstance(value, dict):
            return any(self.mentioned_in(str(key)) or self.in_value(item) for key, item in value.items())
        if isinstance(value, (list, tuple)):
            return any(self.in_value(item) for item in value)
        if isinstance(value, (str, bytes)):
            return self.mentioned_in(value)
        return False

    def scrubbed(self, text: str) -> str:
        """The text with every mention replaced by the pseudonym."""
        return self._pattern.sub(self.pseudonym, text)

    def scrubbed_json(self, text: str) -> str:
        """A JSON document without the subject: a contact (an object with an `email`) that names
        it becomes the pseudonym, its name with it; any other text naming it is scrubbed, and
        text that is not JSON is scrubbed as text."""
        try:
            document = json.loads(text)
        except ValueError:
            return self.scrubbed(text)
        return json.dumps(self._without(document), ensure_ascii=False, sort_keys=True)

    def _without(self, value: Any) -> Any:
        if isinstance(value, dict):
            if isinstance(value.get("email"), str) and self.mentioned_in(value["email"]):
                return self.pseudonym
            return {key: self._without(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._without(item) for item in value]
        return self.scrubbed(value) if isinstance(value, str) else value

    def describe(self) -> str:
        """The subject as the command's output names it (the operator typed it; it is never logged)."""
        if self.kind == "email":
            return f"the address {self.value}"
        return f"client {self.value}" + (f" of partner {self.partner}" if self.partner else "")


def subject_of(client: str | None, email: str | None, partner: str | None = None) -> Subject:
    """The subject an operator named (InvalidSubject, one line, otherwise)."""
    if (client is None) == (email is None):
        raise InvalidSubject("say whose data to erase: --client CLIENT or --email ADDRESS (one of them)")
    if email is not None:
        if partner is not None:
            raise InvalidSubject("--partner goes with --client; an address is erased wherever it is")
        address = email.strip().lower()
        try:
            _EMAIL.validate_python(address)
        except ValidationError:
            raise InvalidSubject(f"{email!r} is not an e-mail address (name@example.com)") from None
        return Subject("email", address)
    assert client is not None
    for name, value in (("client", client), ("partner", partner)):
        if value is None:
            continue
        try:
            _IDENTIFIER.validate_python(value)
        except ValidationError:
            raise InvalidSubject(
                f"{value!r} is not a {name} id (1 to 255 bytes, no control characters)"
            ) from None
    return Subject("client", client, partner)
