"""The reminder ledger, as one room: the operator's side reads it (`questions`: one set of queries
that `renewals reminders`, `renewals owners history`, the console's pages and its API all use) and
says each decision in words (`words`). The worker's batch writes the rows (migration 6's tables)."""
