"""The worker's exit statuses (sysexits.h), so that a supervisor or a person can tell a stop
that a restart cures from one that needs a fix first."""

from worker.redaction import masked

EX_SOFTWARE = 70
"""The graceful stop outlived `SHUTDOWN_GRACE`; unacknowledged messages are redelivered."""

EX_REFUSED = 77
"""The broker or the database refused us: wrong user or password, a vhost or database that does
not exist, or no access to it. No retry can fix it; fix the URL or the server, then start again."""

EX_CONFIG = 78
"""A setting that cannot work (a bad value, a port in use, a queue declared otherwise, a store
schema of another release). Fix the configuration, then start again."""


def store_refusal(store_url: str, error: Exception) -> str:
    """The one line for a database that refused us (libpq's messages span lines), with the fix."""
    said = " ".join(str(error).split())
    return (
        f"{masked(store_url)}: {masked(said)}; check the database name, user and password in"
        " RENEWALS_STORE_URL, or create the database"
    )
