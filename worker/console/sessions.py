"""Session cookies, the sessions kept on the server, and the CSRF tokens bound to them.

A browser always holds one cookie: signed (itsdangerous), HttpOnly, SameSite=Strict. It names a
random session id and, once someone signs in with a password, the user; the session itself is a
row in the store (worker.store.console_sessions), so it can end before the cookie does. The
CSRF token every state-changing request must carry is an HMAC of that session id, so it
changes when the session does (at sign-in) and cannot be made without the key.
"""

import hashlib
import hmac
import secrets
import stat
import time
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from worker.console.identity import ConsoleRefused, Identity
from worker.console.users import User
from worker.private_files import write_private
from worker.settings import Settings
from worker.store.console_sessions import ConsoleSessionRecords

COOKIE = "renewals_console"


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    user: str | None = None


class Sessions:
    """The cookie (signed) and, for a signed-in session, its row on the server, which ends it:
    at sign-out, when the user's password or role changes or they are removed (the row is bound
    to a fingerprint of the user's stored hash and role), after `idle` seconds without a
    request and `absolute` seconds after sign-in."""

    def __init__(self, key: bytes, *, absolute: float, idle: float, secure: bool) -> None:
        self.key = key
        self._serializer = URLSafeTimedSerializer(key, salt="renewals-console-session")
        self.max_age = int(absolute)
        self._absolute_us, self._idle_us = int(absolute * 1e6), int(idle * 1e6)
        self._touch_every_us = min(30_000_000, self._idle_us // 10)
        self.secure = secure

    def read(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data: dict[str, Any] = self._serializer.loads(cookie, max_age=self.max_age)
            user = data.get("user")
            return Session(str(data["sid"]), user if isinstance(user, str) else None)
        except (BadSignature, KeyError, TypeError, AttributeError):
            return None

    def fresh(self) -> Session:
        return Session(secrets.token_urlsafe(24))

    def dump(self, session: Session) -> str:
        return self._serializer.dumps({"sid": session.sid, "user": session.user})

    def fingerprint(self, user: User) -> str:
        """Changes when the user's password (its stored hash) or role does."""
        source = f"{user.name}\x00{user.role}\x00{user.password_hash}".encode()
        return hmac.new(self.key, b"session:" + source, hashlib.sha256).hexdigest()

    def start(self, book: ConsoleSessionRecords, user: User) -> Session:
        """A new signed-in session (a new id: no fixation); the timed-out ones are forgotten."""
        now = _now_us()
        book.prune(idle_before_us=now - self._idle_us, created_before_us=now - self._absolute_us)
        session = Session(secrets.token_urlsafe(24), user.name)
        book.start(session.sid, user.name, self.fingerprint(user), now_us=now)
        return session

    def identity(self, book: ConsoleSessionRecords, session: Session, user: User | None) -> Identity | None:
        """Who this session signs in now, or None: its row gone, timed out, or made before the
        user was removed or given another password or role (those rows go too)."""
        if session.user is None:
            return None
        if user is None:
            book.end_user(session.user)
            return None
        stored = book.find(session.sid)
        if stored is None or stored.user != user.name:
            return None
        fingerprint = self.fingerprint(user)
        if stored.fingerprint != fingerprint:
            book.end_user(user.name, except_fingerprint=fingerprint)
            return None
        now = _now_us()
        if now - stored.seen_at_us > self._idle_us or now - stored.created_at_us > self._absolute_us:
            book.end(session.sid)
            return None
        if now - stored.seen_at_us > self._touch_every_us:
            book.touch(session.sid, now_us=now)
        return Identity(user.name, user.role, "session")

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self.key, f"csrf:{session.sid}".encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, session: Session | None, token: str | None) -> bool:
        if session is None or not token:
            return False
        return hmac.compare_digest(self.csrf_token(session), token)


def _now_us() -> int:
    return time.time_ns() // 1000


def session_key(settings: Settings) -> bytes:
    """The signing key: the setting, else the 0600 key file (made when missing), else a key for
    this process only (everyone signs in again after a restart)."""
    if settings.console_secret is not None:
        secret = settings.console_secret.get_secret_value()
        if len(secret) < 32:
            raise ConsoleRefused("RENEWALS_CONSOLE_SECRET is too short: use at least 32 random characters")
        return secret.encode()
    if settings.console_secret_file is None:
        return secrets.token_bytes(32)
    path = Path(settings.console_secret_file)
    if not path.exists():
        with suppress(FileExistsError):  # another console made it just now: use theirs
            write_private(path, secrets.token_urlsafe(48), replace=False)
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConsoleRefused(f"the console secret file {path} is open to others: chmod 600 {path}")
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise ConsoleRefused(f"the console secret file {path} is too short: use at least 32 random bytes")
    return key
