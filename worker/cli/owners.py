"""`renewals owners show`: who owns renewal communication, read from the projection; and
`renewals owners history`: who changed it when, read from the ledger's owner history."""

import json

import click

from worker.cli.stores import checked_store
from worker.ledger.questions import owner_history
from worker.ledger.words import change_dict
from worker.store import WorkingSet
from worker.tools.owners import described, history_described, ownership


@click.group("owners", short_help="Who owns renewal communication.")
def owners() -> None:
    """Who owns renewal communication for a partner's clients, as the worker sees it now."""


@owners.command(short_help="The effective owner, and who hears.")
@click.option("--partner", "partner_id", required=True, help="Partner id.")
@click.option("--client", "client_id", help="Client id (without it: the partner-wide default).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def show(partner_id: str, client_id: str | None, as_json: bool) -> None:
    """The effective owner, where it was resolved from, and who a reminder would reach now.

    With --client the client's remembered decision maker counts (a reminder that carries
    one of its own would use that instead).
    """
    with checked_store() as store, store.read_only() as transaction:
        found = ownership(WorkingSet(transaction), partner_id, client_id)
    click.echo(json.dumps(found.as_dict(), indent=2) if as_json else described(found))


@owners.command(short_help="Every owner change, won or lost.")
@click.option("--partner", "partner_id", required=True, help="Partner id.")
@click.option("--client", "client_id", help="Client id: its overrides and the partner-wide changes.")
@click.option(
    "--limit", default=200, show_default=True, type=click.IntRange(min=1), help="At most N, latest first."
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def history(partner_id: str, client_id: str | None, limit: int, as_json: bool) -> None:
    """Every owner change of a partner, applied or superseded, the latest change first.

    Without --client: the partner default's changes and every client override's. With it: that
    client's overrides and the partner default's changes, the two that decide its owner. An
    `OwnerChanged` that arrived after a newer one says which event it lost to.
    """
    with checked_store() as store:
        changes = owner_history(store, partner_id, client_id, limit=limit)
    if as_json:
        found = {
            "partner_id": partner_id,
            "client_id": client_id,
            "changes": [change_dict(c) for c in changes],
        }
        click.echo(json.dumps(found, indent=2))
    elif not changes:
        where = f"partner {partner_id}" + (f", client {client_id}" if client_id else "")
        click.echo(f"no owner change in the history for {where}")
    else:
        click.echo(history_described(changes))
