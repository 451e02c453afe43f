"""Secrets never reach a log line, an error or a command's output: `masked` is the one place
that hides them, in a URL, a `;`-separated list of URLs, or a libpq key/value string."""

import re

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


def _hide_password(match: re.Match[str]) -> str:
    user, colon, _password = match["userinfo"].partition(":")
    return f"{match['scheme']}{user}{':***' if colon else ''}@"
