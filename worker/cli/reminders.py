"""`renewals reminders`: a client's reminders from the ledger, newest first, each with its
decision in words."""

import json
from datetime import datetime

import click

from worker.cli.dlq_options import when
from worker.cli.stores import checked_store
from worker.ledger.questions import ReminderQuery, reminders
from worker.ledger.words import decision, delivery, reminder_dict, utc_iso
from worker.tools.tables import render

COLUMNS = ["seq", "handled at", "event", "renewal", "days", "decision", "notification"]


@click.command("reminders", short_help="A client's reminders: whom, and why.")
@click.option("--client", "client_id", required=True, help="Client id.")
@click.option("--partner", "partner_id", help="Only the reminders under this partner.")
@click.option("--since", metavar="WHEN", callback=when, help="Handled at or after WHEN (ISO, or an age: 7d).")
@click.option("--until", metavar="WHEN", callback=when, help="Handled before WHEN.")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=1), help="At most N, newest first."
)
@click.option("--before", type=click.IntRange(min=1), help="Older than this seq (the next page).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def reminders_command(
    client_id: str,
    partner_id: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    before: int | None,
    as_json: bool,
) -> None:
    """A client's reminders as the ledger recorded them, newest first: whom each went to and
    why, or why none went out.

    WHEN is an ISO 8601 date or time (UTC unless it says otherwise) or an age: 90s, 15m, 2h, 7d.
    """
    query = ReminderQuery(client_id=client_id, partner_id=partner_id, since=since, until=until)
    with checked_store() as store:
        page = reminders(store, query, before=before, limit=limit)
    if as_json:
        found = [reminder_dict(row) for row in page.reminders]
        click.echo(json.dumps({"reminders": found, "next_before": page.next_before}, indent=2))
        return
    if not page.reminders:
        click.echo(f"no reminder in the ledger for {query.describe()}")
        return
    rows = [
        {
            "seq": row.seq,
            "handled at": utc_iso(row.handled_at_us),
            "event": row.event_id,
            "renewal": row.renewal_date,
            "days": row.days_until_renewal,
            "decision": decision(row),
            "notification": delivery(row),
        }
        for row in page.reminders
    ]
    click.echo(render(rows, COLUMNS))
    if page.next_before is not None:
        click.echo(f"\nolder: --before {page.next_before}")
