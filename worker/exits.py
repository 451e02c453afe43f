"""The exit statuses of every `renewals` command (sysexits.h where one fits), so that a
supervisor or a person can tell a stop that a retry may cure from one that needs a fix first.
docs/configuration.md#exit-statuses is the table of which command exits with which, and why;
worker/failures.py holds the one wording of each failure."""

EX_FAILED = 1
"""A failure of the command's own, which may pass (an unreachable broker or store, a filter that
matches nothing, a topology not yet declared): the line says what happened."""

EX_SOFTWARE = 70
"""The graceful stop outlived `SHUTDOWN_GRACE`; unacknowledged messages are redelivered."""

EX_REFUSED = 77
"""The broker or the database refused us: wrong user or password, a vhost or database that does
not exist (a SQLite path with no store, or some other file there), or no access to it. No retry
can fix it; fix the URL or the server, then start again."""

EX_CONFIG = 78
"""A setting that cannot work (a bad value, a port in use, a queue declared otherwise, a store
schema of another release, a console with no way in or an unreadable users file). Fix the
configuration, then start again."""
