"""Who may use the console: the users file or the trusted reverse proxy's headers. Closed by
default: with neither configured nothing starts."""

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from worker.console.identity import ROLES, ConsoleRefused, Identity, Role
from worker.console.users import ADD_HINT, Users
from worker.settings import Settings


@dataclass(frozen=True, slots=True)
class Proxy:
    """A reverse proxy that signs people in (oauth2-proxy style); its headers are believed only
    on connections from its own addresses."""

    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    user_header: str
    groups_header: str
    roles: Mapping[str, Role]

    def trusts(self, address: str | None) -> bool:
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)

    def identity(self, headers: Mapping[str, str]) -> Identity | Literal["no role"] | None:
        """The proxy's user with the highest role its groups map to; None without a user."""
        name = headers.get(self.user_header, "").strip()
        if not name:
            return None
        groups = {g.strip() for g in headers.get(self.groups_header, "").split(",")}
        granted = [self.roles[g] for g in groups if g in self.roles]
        if not granted:
            return "no role"
        return Identity(name, max(granted, key=ROLES.index), "proxy")


@dataclass(frozen=True, slots=True)
class Access:
    users: Users | None
    proxy: Proxy | None


def access_of(settings: Settings) -> Access:
    """The configured ways in; ConsoleRefused (one line) when there is none or one is unusable."""
    users = Users.load(Path(settings.console_users)) if settings.console_users else None
    if users is not None and not users.users:
        raise ConsoleRefused(f"the console users file {users.path} has no users: {ADD_HINT}")
    proxy = None
    if settings.console_proxy_addresses:
        try:
            networks = tuple(ipaddress.ip_network(a, strict=False) for a in settings.console_proxy_addresses)
        except ValueError as exc:
            raise ConsoleRefused(f"invalid RENEWALS_CONSOLE_PROXY_ADDRESSES: {exc}") from None
        if not settings.console_proxy_roles:
            raise ConsoleRefused(
                "a trusted proxy needs its groups mapped to roles:"
                ' set RENEWALS_CONSOLE_PROXY_ROLES (JSON, e.g. {"sre": "operator", "support": "viewer"})'
            )
        proxy = Proxy(
            networks,
            settings.console_proxy_user_header,
            settings.console_proxy_groups_header,
            dict(settings.console_proxy_roles),
        )
    if users is None and proxy is None:
        raise ConsoleRefused(
            "the console is closed: set RENEWALS_CONSOLE_USERS to a users file and add a user"
            " (renewals console user add NAME --role operator --password-stdin),"
            " or RENEWALS_CONSOLE_PROXY_ADDRESSES for a trusted sign-in proxy (see docs/console.md)"
        )
    return Access(users, proxy)
