"""What state the handlers read for given events, so a batch can load it in one go."""

from collections.abc import Iterable

from events import OwnerChanged, RenewalApproaching
from handlers.ports import Needs, ReminderKey, SettingKey


def needs_of(events: Iterable[RenewalApproaching | OwnerChanged]) -> Needs:
    """The settings, decision makers and reminder keys these events' handlers look at."""
    settings: set[SettingKey] = set()
    decision_makers: set[str] = set()
    reminders: set[ReminderKey] = set()
    for event in events:
        if isinstance(event, OwnerChanged):
            settings.add(SettingKey(event.data.partner_id, event.data.client_id))
            continue
        data = event.data
        if data.partner_id is not None:
            settings.add(SettingKey(data.partner_id, data.client_id))
            settings.add(SettingKey(data.partner_id, None))
        decision_makers.add(data.client_id)
        reminders.add(ReminderKey(data.client_id, data.renewal_date, event.days_until_renewal))
    return Needs(frozenset(settings), frozenset(decision_makers), frozenset(reminders))
