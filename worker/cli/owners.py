"""`renewals owners show`: who owns renewal communication, read from the projection."""

import json
from typing import Any

import click

from worker.cli.core import load_settings, require_existing_store
from worker.redaction import masked
from worker.store import StoreRefused, WorkingSet, open_store
from worker.tools.owners import Case, Ownership, ownership, who
from worker.tools.tables import printable, render


@click.group("owners")
def owners() -> None:
    """Who owns renewal communication for a partner's clients, as the worker sees it now."""


@owners.command()
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
        store = open_store(settings.store_url)
    except StoreRefused:
        raise  # told once, by the command group: exit 77
    except Exception as exc:
        raise click.ClickException(
            f"cannot open the store {masked(settings.store_url)}: {type(exc).__name__}: {masked(str(exc))}"
        ) from None
    try:
        with store.transaction() as transaction:
            found = ownership(WorkingSet(transaction), partner_id, client_id)
    finally:
        store.close()
    click.echo(json.dumps(found.as_dict(), indent=2) if as_json else _described(found))


SETTING_COLUMNS = ["partner_id", "client_id", "owner", "resolved_from", "partner_contact"]
CASE_COLUMNS = ["reminder for", "to", "cc", "audience", "fallback"]


def _described(found: Ownership) -> str:
    facts = found.as_dict()
    changed = found.changed and f"{facts['changed_at']} by event {found.changed.event_id}"
    contact = found.contact and found.contact.email
    setting = {
        **facts,
        "client_id": found.client_id or "(partner-wide)",
        "partner_contact": contact,
    }
    lines = [render([{**setting, "changed": changed}], [*SETTING_COLUMNS, "changed"])]
    if found.client_id is not None:
        maker = found.decision_maker
        seen = f", seen {facts['decision_maker_seen_at']}"
        lines += ["", printable(f"decision maker: {'none known' if maker is None else maker.email + seen}")]
    lines += ["", render([_case_row(case) for case in found.cases], CASE_COLUMNS)]
    for case in found.cases:
        if case.no_recipient is not None:
            where = "" if found.client_id is not None else f" for {case.situation}"
            lines.append(printable(f"no recipient{where}: {case.no_recipient}; a reminder is dead-lettered"))
    return "\n".join(lines)


def _case_row(case: Case) -> dict[str, Any]:
    recipients = case.recipients
    if recipients is None:
        return {
            "reminder for": case.situation,
            "to": "NO RECIPIENT",
            "audience": "(dead letter: no_recipient)",
        }
    return {
        "reminder for": case.situation,
        "to": [who(r) for r in recipients.to],
        "cc": [who(r) for r in recipients.cc],
        "audience": recipients.audience,
        "fallback": recipients.fallback,
    }
