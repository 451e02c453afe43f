"""`renewals owners show`: who owns renewal communication, read from the projection."""

import json

import click

from worker.cli.core import load_settings, require_existing_store
from worker.redaction import masked
from worker.store import StoreRefused, WorkingSet
from worker.store.configured import open_configured_store
from worker.tools.owners import described, ownership


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
    settings = load_settings()
    require_existing_store(settings)
    try:
        store = open_configured_store(settings)
    except StoreRefused:
        raise  # told once, by the command group: exit 77
    except Exception as exc:
        raise click.ClickException(
            f"cannot open the store {masked(settings.store_url)}: {type(exc).__name__}: {masked(str(exc))}"
        ) from None
    try:
        with store.read_only() as transaction:
            found = ownership(WorkingSet(transaction), partner_id, client_id)
    finally:
        store.close()
    click.echo(json.dumps(found.as_dict(), indent=2) if as_json else described(found))
