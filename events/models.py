"""Pydantic models of the three messages on the wire, each a CloudEvents 1.0 envelope."""

from datetime import date
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

# Deliberately loose: one "@", no spaces, a dot in the domain. Deliverability is the
# notification service's business; this only keeps obvious garbage out of the projection.
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

NonEmpty = Annotated[str, Field(min_length=1, max_length=256)]
Email = Annotated[str, Field(pattern=EMAIL_PATTERN, max_length=254)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Contact(_Frozen):
    """A person who can receive a renewal message."""

    email: Email
    name: str | None = None
    user_id: str | None = None


class Envelope(_Frozen):
    """CloudEvents 1.0 structured mode: the attributes every message carries."""

    specversion: Literal["1.0"]
    id: NonEmpty
    source: NonEmpty
    type: str
    time: AwareDatetime
    subject: str | None = None


class RenewalApproachingData(_Frozen):
    partner_id: NonEmpty | None
    client_id: NonEmpty
    client_name: str | None = None
    renewal_date: date
    days_until_renewal: Annotated[int, Field(ge=0, strict=True)] | None = None
    subscription: str | None = None
    decision_maker: Contact | None = None


class RenewalApproaching(Envelope):
    """Billing says a client's renewal is near."""

    type: Literal["RenewalApproaching"]
    data: RenewalApproachingData

    @model_validator(mode="after")
    def _renewal_not_in_the_past(self) -> "RenewalApproaching":
        if self.data.days_until_renewal is None and self.days_until_renewal < 0:
            raise ValueError(f"renewal_date {self.data.renewal_date} is before the event time {self.time}")
        return self

    @property
    def days_until_renewal(self) -> int:
        """The payload's figure, or the days from the event's own date to the renewal."""
        if self.data.days_until_renewal is not None:
            return self.data.days_until_renewal
        return (self.data.renewal_date - self.time.date()).days


class OwnerChangedData(_Frozen):
    partner_id: NonEmpty
    client_id: NonEmpty | None = None
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
    name: str | None = None
    user_id: str | None = None


class NotificationRequestedData(_Frozen):
    notification_id: str
    causation_id: str
    kind: Literal["renewal_reminder"] = "renewal_reminder"
    partner_id: str | None
    client_id: str
    client_name: str | None
    renewal_date: date
    days_until_renewal: int
    subscription: str | None
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
