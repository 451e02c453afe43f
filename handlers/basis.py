"""What a reminder's decision rests on: the effective setting and the change that set it, the
decision maker and the event that named them, and the rule table's row. The reminder ledger
records it, for a reminder that was dead-lettered too."""

from dataclasses import dataclass

from events import Contact, RenewalApproaching
from handlers.ports import Projection
from handlers.projection import Effective, effective_setting
from handlers.recipients import rule_row


@dataclass(frozen=True, slots=True)
class Basis:
    """`decision_maker_event_id` is the event that named the decision maker (this reminder's own
    id when it names one); `rule_row` is the row of docs/domain.md's rule table."""

    effective: Effective
    decision_maker: Contact | None
    decision_maker_event_id: str | None
    rule_row: int


def basis_of(event: RenewalApproaching, *, projection: Projection) -> Basis:
    """Read, never write: the setting in force and the decision maker for this reminder."""
    data = event.data
    effective = effective_setting(data.partner_id, data.client_id, projection=projection)
    decision_maker: Contact | None
    named_by: str | None
    if data.decision_maker is not None:
        decision_maker, named_by = data.decision_maker, event.id
    else:
        remembered = projection.decision_maker(data.client_id)
        decision_maker = None if remembered is None else remembered.value
        named_by = None if remembered is None else remembered.stamp.event_id
    return Basis(effective, decision_maker, named_by, rule_row(effective.setting, decision_maker))
