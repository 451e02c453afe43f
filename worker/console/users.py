"""The console's users file: argon2 hashes of passwords, a role each, readable by its owner
only; and the check of a script's HTTP Basic password, remembered for a minute."""

import functools
import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from worker.console.identity import ROLES, ConsoleRefused, Identity, Role

_HASHER = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the user is unknown, so a wrong name costs as long as a wrong
    password (made on first use: hashing is slow on purpose)."""
    return _HASHER.hash(secrets.token_hex(16))


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
            raise ConsoleRefused(f"no console users file at {path}: {ADD_HINT}") from None
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
            _HASHER.verify(user.password_hash if user else _dummy_hash(), password)
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


ADD_HINT = "add one with `renewals console user add NAME --role viewer|operator --password-stdin`"


def _role(value: object) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise ValueError(f"unknown role {value!r} (viewer or operator)")
