"""Pydantic models of the three messages on the wire, each a CloudEvents 1.0 envelope."""

from datetime import date
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from events.trace_context import (
    MAX_TRACEPARENT_CHARS,
    MAX_TRACESTATE_CHARS,
    TRACEPARENT_PATTERN,
    TRACESTATE_PATTERN,
)

# C0 controls, DEL and C1 controls, as the inside of a regular-expression class. No id or text
# of ours has a use for them, PostgreSQL's `text` cannot hold NUL, and an ESC or a CR in an id
# would reach an operator's terminal. The same class serves the schema, pydantic (in Rust, on
# the hot path) and `parsing.describe` (which names the character found).
CONTROL_CHARACTERS = r"\x00-\x1f\x7f-\x9f"
NO_CONTROL_CHARACTERS = rf"^[^{CONTROL_CHARACTERS}]*$"

# Deliberately loose: one "@", no spaces or control characters, a dot in the domain.
# Deliverability is the notification service's business; this only keeps obvious garbage
# out of the projection.
_ADDRESS_PART = rf"[^@\s{CONTROL_CHARACTERS}]+"
EMAIL_PATTERN = rf"^{_ADDRESS_PART}@{_ADDRESS_PART}\.{_ADDRESS_PART}$"

MAX_IDENTIFIER_BYTES = 255
"""An id's limit in bytes (UTF-8): an AMQP short string's. The event id becomes a notification's
`correlation_id`, a short string; every id is held to the same bound where it enters, so that no
value the worker accepted can fail to be encoded later, after its batch has committed."""
MAX_TEXT_CHARS = 1000
# A century. No subscription renews further ahead, and every figure in 0..36500 fits every
# store's INTEGER (PostgreSQL's is 32-bit, SQLite's 64-bit): an event that passes the model
# can always be recorded, instead of failing (and being retried) at the store.
MAX_DAYS_UNTIL_RENEWAL = 36500


def within_identifier_bytes(text: str) -> str:
    """The text, if it is at most MAX_IDENTIFIER_BYTES in UTF-8 (pydantic counts characters:
    86 x "€" is 86 characters and 258 bytes)."""
    if len(text) * 4 > MAX_IDENTIFIER_BYTES and len(text.encode()) > MAX_IDENTIFIER_BYTES:
        raise PydanticCustomError(
            "string_too_many_bytes",
            "String should have at most {max_bytes} bytes in UTF-8 (an AMQP short string), not {bytes}",
            {"max_bytes": MAX_IDENTIFIER_BYTES, "bytes": len(text.encode())},
        )
    return text


_ID_BYTES = AfterValidator(within_identifier_bytes)
Identifier = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_IDENTIFIER_BYTES,
        pattern=NO_CONTROL_CHARACTERS,
        description="1 to 255 bytes in UTF-8 (an AMQP short string), no control characters",
    ),
    _ID_BYTES,
]
"""An id (event, source, type, partner, client): 1 to 255 bytes in UTF-8, no control characters."""
Text = Annotated[str, Field(max_length=MAX_TEXT_CHARS, pattern=NO_CONTROL_CHARACTERS)]
"""Free text (a name, a subscription, a subject): at most 1000 characters, no control characters."""
UserId = Annotated[
    Text, Field(max_length=MAX_IDENTIFIER_BYTES, description="at most 255 bytes in UTF-8"), _ID_BYTES
]
"""A contact's user id: bounded like an id, but empty as well as absent was always accepted."""
Email = Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=254)]
DaysUntilRenewal = Annotated[int, Field(ge=0, le=MAX_DAYS_UNTIL_RENEWAL, strict=True)]


def _dropped_if_invalid(value: object, handler: ValidatorFunctionWrapHandler) -> str | None:
    """A trace context attribute never fails an event: one that is not well formed is None."""
    try:
        valid: str = handler(value)
    except ValidationError:
        return None
    return valid


def _absent_when_none(value: object) -> bool:
    return value is None


TraceParentAttribute = Annotated[
    str | None,
    Field(
        default=None,
        max_length=MAX_TRACEPARENT_CHARS,
        pattern=TRACEPARENT_PATTERN,
        exclude_if=_absent_when_none,
        description="W3C traceparent (CloudEvents distributed tracing extension); ignored if malformed",
    ),
    WrapValidator(_dropped_if_invalid),
]
TraceStateAttribute = Annotated[
    str | None,
    Field(
        default=None,
        max_length=MAX_TRACESTATE_CHARS,
        pattern=TRACESTATE_PATTERN,
        exclude_if=_absent_when_none,
        description="W3C tracestate (CloudEvents distributed tracing extension); ignored if malformed",
    ),
    WrapValidator(_dropped_if_invalid),
]


class TraceContextHeaders(BaseModel):
    """AMQP headers a message may carry: W3C Trace Context. On input they win over the
    envelope's attributes; the worker writes them on everything it publishes while tracing is on."""

    model_config = ConfigDict(extra="allow", frozen=True)

    traceparent: TraceParentAttribute = None
    tracestate: TraceStateAttribute = None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Contact(_Frozen):
    """A person who can receive a renewal message."""

    email: Email
    name: Text | None = None
    user_id: UserId | None = None


class Envelope(_Frozen):
    """CloudEvents 1.0 structured mode: the attributes every message carries."""

    specversion: Literal["1.0"]
    id: Identifier
    source: Identifier
    type: Identifier
    time: AwareDatetime
    subject: Text | None = None
    traceparent: TraceParentAttribute = None
    tracestate: TraceStateAttribute = None


class RenewalApproachingData(_Frozen):
    partner_id: Identifier | None
    client_id: Identifier
    client_name: Text | None = None
    renewal_date: date
    days_until_renewal: DaysUntilRenewal | None = None
    subscription: Text | None = None
    decision_maker: Contact | None = None


class RenewalApproaching(Envelope):
    """Billing says a client's renewal is near."""

    type: Literal["RenewalApproaching"]
    data: RenewalApproachingData

    @model_validator(mode="after")
    def _renewal_not_in_the_past(self) -> "RenewalApproaching":
        if self.data.days_until_renewal is None:
            days = self.days_until_renewal
            if days < 0:
                raise ValueError(
                    f"renewal_date {self.data.renewal_date} is before the event time {self.time}"
                )
            if days > MAX_DAYS_UNTIL_RENEWAL:
                raise ValueError(
                    f"renewal_date {self.data.renewal_date} is {days} days after the event time,"
                    f" more than {MAX_DAYS_UNTIL_RENEWAL}"
                )
        return self

    @property
    def days_until_renewal(self) -> int:
        """The payload's figure, or the days from the event's own date to the renewal."""
        if self.data.days_until_renewal is not None:
            return self.data.days_until_renewal
        return (self.data.renewal_date - self.time.date()).days


class OwnerChangedData(_Frozen):
    partner_id: Identifier
    client_id: Identifier | None = None
    owner: Literal["platform", "partner", "default"]
    partner_contact: Contact | None = None

    @model_validator(mode="after")
    def _combination_is_meaningful(self) -> "OwnerChangedData":
        if self.owner == "partner" and self.partner_contact is None:
            raise ValueError("owner 'partner' needs a partner_contact")
        if self.owner == "default" and self.client_id is None:
            raise ValueError("owner 'default' only exists for a client (client_id is null)")
        return self


class OwnerChanged(Envelope):
    """A partner changed who owns renewal communication, partner-wide or for one client."""

    type: Literal["OwnerChanged"]
    data: OwnerChangedData


Event = Annotated[RenewalApproaching | OwnerChanged, Field(discriminator="type")]
"""Everything the worker consumes."""


class Recipient(_Frozen):
    role: Literal["decision_maker", "partner_contact"]
    email: Email
    name: Text | None = None
    user_id: UserId | None = None


class NotificationRequestedData(_Frozen):
    notification_id: Identifier
    causation_id: Identifier
    kind: Literal["renewal_reminder"] = "renewal_reminder"
    partner_id: Identifier | None
    client_id: Identifier
    client_name: Text | None
    renewal_date: date
    days_until_renewal: DaysUntilRenewal
    subscription: Text | None
    owner: Literal["platform", "partner"]
    resolved_from: Literal["client_override", "partner_default", "system_default"]
    audience: Literal["decision_maker", "partner_contact", "both"]
    to: tuple[Recipient, ...]
    cc: tuple[Recipient, ...]
    fallback: Literal["decision_maker_missing"] | None


class NotificationRequested(Envelope):
    """What the worker asks the notification services to send."""

    type: Literal["NotificationRequested"]
    data: NotificationRequestedData
