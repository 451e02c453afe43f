"""Who is asking, and what they may do: two roles, in rising order of power."""

from dataclasses import dataclass
from typing import Literal, get_args

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = get_args(Role)
"""In rising order of power: an operator may do everything a viewer may."""

Via = Literal["session", "basic", "proxy"]


NAME_SHOWN = 64
"""At most this many characters of a submitted user name reach a log line or the audit."""


def shown_name(name: str) -> str:
    """A submitted user name cut to a bounded length (anyone may submit a megabyte of it)."""
    return name if len(name) <= NAME_SHOWN else f"{name[:NAME_SHOWN]}... ({len(name)} characters)"


class ConsoleRefused(Exception):
    """The console cannot start as configured; the message is one line that names the fix."""


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    role: Role
    via: Via

    def may(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)
