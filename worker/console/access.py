"""Who may use the console, and as what: the users file (argon2 hashes, a role each) and the
trusted reverse proxy's headers. Closed by default: with neither configured nothing starts."""

import hashlib
import hmac
import ipaddress
import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, get_args

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from worker.settings import Settings

Role = Literal["viewer", "operator"]
ROLES: tuple[Role, ...] = get_args(Role)
"""In rising order of power: an operator may do everything a viewer may."""

Via = Literal["session", "basic", "proxy"]

_HASHER = PasswordHasher()
# Verified against when the user is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash(secrets.token_hex(16))


class ConsoleRefused(Exception):
    """The console cannot start as configured; the message is one line that names the fix."""


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    role: Role
    via: Via

    def may(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role
    password_hash: str


class Users:
    """The users file: JSON `{"users": {NAME: {"role": ROLE, "hash": ARGON2}}}`, mode 0600."""

    def __init__(self, path: Path, users: Mapping[str, User], stamp: float | None = None) -> None:
        self.path, self.users, self._stamp = path, dict(users), stamp

    def refresh(self) -> "Users":
        """Read the file again if it changed since (a user added, removed, given a new role or
        password while the console runs); an unreadable file keeps the users as they were."""
        try:
            stamp = self.path.stat().st_mtime
            if stamp != self._stamp:
                again = Users.load(self.path)
                self.users, self._stamp = again.users, stamp
        except ConsoleRefused:
            pass  # half-written, say: the next request reads it again
        except OSError:
            pass
        return self

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool = False) -> "Users":
        if missing_ok and not path.exists():
            return cls(path, {})
        try:
            mode = path.stat().st_mode
            document = json.loads(path.read_bytes())
            users = {
                name: User(name, _role(entry["role"]), str(entry["hash"]))
                for name, entry in document["users"].items()
            }
        except FileNotFoundError:
            raise ConsoleRefused(f"no console users file at {path}: {_ADD_HINT}") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConsoleRefused(f"cannot read the console users file {path}: {exc}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConsoleRefused(f"the console users file {path} is open to others: chmod 600 {path}")
        return cls(path, users, path.stat().st_mtime)

    def add(self, name: str, role: Role, password: str) -> None:
        """Add (or replace) a user and write the file again, readable by its owner only."""
        if not name or any(not c.isprintable() or c.isspace() or c == ":" for c in name):
            raise ConsoleRefused(f"invalid user name {name!r}: use printable characters, no spaces or ':'")
        if len(password) < 12:
            raise ConsoleRefused("password too short: use at least 12 characters")
        self.users[name] = User(name, role, _HASHER.hash(password))
        document = {"users": {u.name: {"role": u.role, "hash": u.password_hash} for u in self.users.values()}}
        temporary = self.path.with_name(self.path.name + ".tmp")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            os.fchmod(stream.fileno(), 0o600)
            json.dump(document, stream, indent=2)
        os.replace(temporary, self.path)

    def verify(self, name: str, password: str) -> Identity | None:
        """The user signed in with this password, or None (the same time either way)."""
        user = self.users.get(name)
        try:
            _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        return Identity(user.name, user.role, "basic") if user else None


class BasicChecks:
    """Scripts send their password with every request; argon2 makes each check slow on purpose.
    A password that was right is remembered for a minute, as an HMAC under the session key
    (never the password itself) bound to the user's stored hash and role, so a script's next
    requests are fast and a changed password or role counts at once; a wrong one never is."""

    def __init__(self, key: bytes, *, remember: float = 60.0, size: int = 1000) -> None:
        self._key, self._remember, self._size = key, remember, size
        self._known: dict[bytes, tuple[Identity, float]] = {}
        self._lock = threading.Lock()

    def verify(self, users: Users, name: str, password: str) -> Identity | None:
        user = users.users.get(name)
        stored = user.password_hash if user else ""  # a new password or role: a new digest
        source = f"{name}\x00{user and user.role}\x00{stored}\x00{password}"
        digest = hmac.new(self._key, source.encode(), hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            known = self._known.get(digest)
        if known is not None and known[1] > now:
            return known[0]
        identity = users.verify(name, password)
        if identity is not None:
            with self._lock:
                if len(self._known) >= self._size:
                    self._known.clear()
                self._known[digest] = (identity, now + self._remember)
        return identity


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
        raise ConsoleRefused(f"the console users file {users.path} has no users: {_ADD_HINT}")
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
            settings.console_proxy_roles,
        )
    if users is None and proxy is None:
        raise ConsoleRefused(
            "the console is closed: set RENEWALS_CONSOLE_USERS to a users file and add a user"
            " (renewals console user add NAME --role operator --password-stdin),"
            " or RENEWALS_CONSOLE_PROXY_ADDRESSES for a trusted sign-in proxy (see docs/console.md)"
        )
    return Access(users, proxy)


_ADD_HINT = "add one with `renewals console user add NAME --role viewer|operator --password-stdin`"


def _role(value: object) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise ValueError(f"unknown role {value!r} (viewer or operator)")
