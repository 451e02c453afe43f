"""Signed session cookies and the CSRF tokens bound to them.

A browser always holds one cookie: signed (itsdangerous), HttpOnly, SameSite=Strict. It names a
random session id and, once someone signs in with a password, the user and role. The CSRF token
every state-changing request must carry is an HMAC of that session id, so it changes when the
session does (at sign-in) and cannot be made without the key.
"""

import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from worker.console.identity import ROLES, ConsoleRefused, Identity
from worker.settings import Settings

COOKIE = "renewals_console"


@dataclass(frozen=True, slots=True)
class Session:
    sid: str
    user: str | None = None
    role: str | None = None

    def identity(self) -> Identity | None:
        for role in ROLES:
            if self.user and self.role == role:
                return Identity(self.user, role, "session")
        return None


class Sessions:
    def __init__(self, key: bytes, max_age_seconds: float, secure: bool) -> None:
        self.key = key
        self._serializer = URLSafeTimedSerializer(key, salt="renewals-console-session")
        self.max_age = int(max_age_seconds)
        self.secure = secure

    def read(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        try:
            data: dict[str, Any] = self._serializer.loads(cookie, max_age=self.max_age)
            return Session(str(data["sid"]), data.get("user"), data.get("role"))
        except (BadSignature, KeyError, TypeError):
            return None

    def fresh(self, identity: Identity | None = None) -> Session:
        sid = secrets.token_urlsafe(24)
        return Session(sid) if identity is None else Session(sid, identity.name, identity.role)

    def dump(self, session: Session) -> str:
        return self._serializer.dumps({"sid": session.sid, "user": session.user, "role": session.role})

    def csrf_token(self, session: Session) -> str:
        return hmac.new(self.key, f"csrf:{session.sid}".encode(), hashlib.sha256).hexdigest()

    def csrf_valid(self, session: Session | None, token: str | None) -> bool:
        if session is None or not token:
            return False
        return hmac.compare_digest(self.csrf_token(session), token)


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
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as stream:
            stream.write(secrets.token_urlsafe(48))
    if path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConsoleRefused(f"the console secret file {path} is open to others: chmod 600 {path}")
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise ConsoleRefused(f"the console secret file {path} is too short: use at least 32 random bytes")
    return key
