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

from worker.console.identity import NAME_SHOWN, ROLES, ConsoleRefused, Identity, Role, shown_name
from worker.logs import get_logger
from worker.private_files import write_private

_HASHER = PasswordHasher()
log = get_logger("worker.console")


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


_Stamp = tuple[int, int, int, int, int]
"""What says the users file changed: device, inode, size, modification time (ns), mode."""


class Users:
    """The users file: JSON `{"users": {NAME: {"role": ROLE, "hash": ARGON2}}}`, mode 0600."""

    def __init__(self, path: Path, users: Mapping[str, User], stamp: _Stamp | None = None) -> None:
        self.path, self.users, self._stamp = path, dict(users), stamp
        self.problem: str | None = None
        """Why nobody signs in with a password now (the file went missing, open or bad), or None."""
        self._lock = threading.Lock()

    def refresh(self) -> "Users":
        """Read the file again if it changed since (a user added, removed, given a new role or
        password while the console runs): one stat per request. A file that went missing, open
        to others or unreadable (half-written, say) closes password sign-in until it is fixed,
        with one error line in the log; it never keeps the old users."""
        stamp = _stamp_of(self.path)
        if stamp == self._stamp:
            return self
        with self._lock:
            if stamp != self._stamp:
                try:
                    self.users, self.problem = Users.load(self.path).users, None
                    log.info("console.users_file_read", path=str(self.path), users=len(self.users))
                except ConsoleRefused as exc:
                    self.users, self.problem = {}, str(exc)
                    log.error("console.users_file_refused", problem=self.problem)
                self._stamp = stamp
        return self

    @classmethod
    def load(cls, path: Path, *, missing_ok: bool = False) -> "Users":
        if missing_ok and not path.exists():
            return cls(path, {})
        try:
            with open(path, "rb") as stream:
                status = os.fstat(stream.fileno())
                document = json.loads(stream.read())
            users = {
                name: User(name, _role(entry["role"]), str(entry["hash"]))
                for name, entry in document["users"].items()
            }
        except FileNotFoundError:
            raise ConsoleRefused(f"no console users file at {path}: {ADD_HINT}") from None
        except (KeyError, TypeError, AttributeError) as exc:
            missing = f"no {exc.args[0]!r} in it" if isinstance(exc, KeyError) else "a part shaped otherwise"
            raise ConsoleRefused(
                f"cannot read the console users file {path}: {missing}, where {USERS_SHAPE} is expected;"
                " move it aside and add users with `renewals console user add`"
            ) from None
        except (OSError, ValueError) as exc:
            raise ConsoleRefused(f"cannot read the console users file {path}: {exc}") from None
        if status.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConsoleRefused(f"the console users file {path} is open to others: chmod 600 {path}")
        return cls(path, users, _stamp_of(path))

    def add(self, name: str, role: Role, password: str) -> None:
        """Add (or replace) a user and write the file again, readable by its owner only."""
        if (
            not name
            or len(name) > NAME_SHOWN
            or any(not c.isprintable() or c.isspace() or c == ":" for c in name)
        ):
            raise ConsoleRefused(
                f"invalid user name {shown_name(name)!r}: use up to {NAME_SHOWN} printable characters,"
                " no spaces or ':'"
            )
        if len(password) < 12:
            raise ConsoleRefused("password too short: use at least 12 characters")
        self.users[name] = User(name, role, _HASHER.hash(password))
        self._write()

    def set_password(self, name: str, password: str) -> None:
        """A new password for an existing user (their role stays); the file written again."""
        if name not in self.users:
            raise ConsoleRefused(f"no console user {shown_name(name)!r} in {self.path}")
        self.add(name, self.users[name].role, password)

    def remove(self, name: str) -> None:
        """Remove a user and write the file again (their sessions end at their next request;
        `renewals console user remove` also ends them in the store at once)."""
        if name not in self.users:
            raise ConsoleRefused(f"no console user {shown_name(name)!r} in {self.path}")
        del self.users[name]
        self._write()

    def _write(self) -> None:
        document = {"users": {u.name: {"role": u.role, "hash": u.password_hash} for u in self.users.values()}}
        write_private(self.path, json.dumps(document, indent=2) + "\n")

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

    def remembered(self, users: Users, name: str, password: str) -> Identity | None:
        """The identity of a password that was right less than a minute ago (no hash runs)."""
        with self._lock:
            known = self._known.get(self._digest(users, name, password))
        return known[0] if known is not None and known[1] > time.monotonic() else None

    def verify(self, users: Users, name: str, password: str) -> Identity | None:
        known = self.remembered(users, name, password)
        if known is not None:
            return known
        identity = users.verify(name, password)
        if identity is not None:
            with self._lock:
                if len(self._known) >= self._size:
                    self._known.clear()
                until = time.monotonic() + self._remember
                self._known[self._digest(users, name, password)] = (identity, until)
        return identity

    def _digest(self, users: Users, name: str, password: str) -> bytes:
        user = users.users.get(name)
        stored = user.password_hash if user else ""  # a new password or role: a new digest
        source = f"{name}\x00{user and user.role}\x00{stored}\x00{password}"
        return hmac.new(self._key, source.encode(), hashlib.sha256).digest()


USERS_SHAPE = '{"users": {NAME: {"role": ..., "hash": ...}}}'
ADD_HINT = "add one with `renewals console user add NAME --role viewer|operator --password-stdin`"


def _stamp_of(path: Path) -> _Stamp | None:
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_mode)


def _role(value: object) -> Role:
    for role in ROLES:
        if value == role:
            return role
    raise ValueError(f"unknown role {value!r} (viewer or operator)")
