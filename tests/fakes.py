"""An in-memory Projection: what the domain rules are unit-tested against."""

from events import Contact
from handlers import OwnerSetting, ReminderKey, SettingKey, Versioned


class InMemoryProjection:
    def __init__(self) -> None:
        self.settings: dict[SettingKey, Versioned[OwnerSetting]] = {}
        self.decision_makers: dict[str, Versioned[Contact]] = {}
        self.reminders: dict[ReminderKey, str] = {}

    def setting(self, key: SettingKey) -> Versioned[OwnerSetting] | None:
        return self.settings.get(key)

    def put_setting(self, key: SettingKey, setting: Versioned[OwnerSetting]) -> None:
        self.settings[key] = setting

    def decision_maker(self, client_id: str) -> Versioned[Contact] | None:
        return self.decision_makers.get(client_id)

    def settings_for(self, partner_id: str, client_id: str):  # type: ignore[no-untyped-def]
        return self.settings.get(SettingKey(partner_id, client_id)), self.settings.get(
            SettingKey(partner_id, None)
        )

    def remember_decision_maker(self, client_id: str, contact: Versioned[Contact]) -> None:
        current = self.decision_makers.get(client_id)
        if current is None or current.stamp < contact.stamp:
            self.decision_makers[client_id] = contact

    def claim_reminder(self, key: ReminderKey, notification_id: str) -> bool:
        if key in self.reminders:
            return False
        self.reminders[key] = notification_id
        return True
