"""Secrets never reach a log line, an error or a command's output: `masked` is the one place
that hides them, in a URL, a `;`-separated list of URLs, or a libpq key/value string;
`redacted` also hides them in a library's message about a URL it could not read."""

import re
from urllib.parse import unquote

# The user-info of a URL is everything between "://" and the LAST "@" of that URL: a password
# with an unescaped "/", "?", "#" or "@" is hidden whole (at worst, more than the password).
_USER_INFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^;]*)@")
# libpq key/value parameters (`password=...`, `sslpassword='...'`), in a conninfo string or
# in a URL's query.
_PARAMETER = re.compile(r"(?P<key>\b\w*password\s*=\s*)(?P<value>'(?:[^'\\]|\\.)*'|[^\s&;#]*)", re.IGNORECASE)


def masked(text: str) -> str:
    """`text` with every password replaced by `***` (the user name is kept)."""
    text = _USER_INFO.sub(_hide_password, text)
    return _PARAMETER.sub(lambda match: match["key"] + "***", text)


def redacted(text: str, url: str) -> str:
    """`masked(text)`, with every password of `url`, and every piece of one between reserved
    characters, replaced by `***`: a client library that cannot read a URL quotes what it could
    not read (`"Golf7#Hotel8@127.0.0.1"`), which, for a password holding `/`, `?`, `#` or `@`,
    is part of the password without the `://` and `@` that `masked` recognises."""
    for secret in sorted(_passwords(url), key=len, reverse=True):
        text = text.replace(secret, "***")
    return masked(text)


def _passwords(url: str) -> set[str]:
    """The passwords in `url` (user-info and `password=` parameters), as written and decoded,
    and their pieces between reserved characters (those of three characters or more)."""
    found = {match["userinfo"].partition(":")[2] for match in _USER_INFO.finditer(url)}
    found |= {match["value"].strip("'") for match in _PARAMETER.finditer(url)}
    pieces = set()
    for password in found:
        for candidate in (password, unquote(password)):
            pieces |= {candidate, *re.split(r"[/?#@&;=\s]+", candidate)}
    return {piece for piece in pieces if len(piece) >= 3}


def _hide_password(match: re.Match[str]) -> str:
    user, colon, _password = match["userinfo"].partition(":")
    return f"{match['scheme']}{user}{':***' if colon else ''}@"
