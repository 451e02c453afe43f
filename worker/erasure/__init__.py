"""Erasure of a client's or a person's data, as one room: whose data (`subject`), where the store
keeps it (`rows`: projection, ledger, history, the dead letters' notes and audit; `tombstones`:
the outbox and the dead letters themselves), and the use case, once (`actions`), which
`renewals forget`, the console's form and `POST /api/forget` adapt. docs/operations.md
("Erasing a person's data") says what an operator must do outside the store."""

from worker.erasure.actions import ErasureReport, NotificationsPending, beyond, forget, preview
from worker.erasure.subject import InvalidSubject, Subject, subject_of

__all__ = [
    "ErasureReport",
    "InvalidSubject",
    "NotificationsPending",
    "Subject",
    "beyond",
    "forget",
    "preview",
    "subject_of",
]
