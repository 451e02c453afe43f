"""`renewals forget`: erase a client's or a person's data from the store (worker/erasure), a
preview first, then with --yes."""

import json

import click

from worker import logs
from worker.cli.core import load_settings
from worker.cli.stores import checked_store
from worker.dead_letters import user
from worker.erasure import ErasureReport, InvalidSubject, NotificationsPending, forget, preview, subject_of
from worker.tools.tables import render


class CommandLineMistake(click.ClickException):
    """Options that cannot go together, or a value that is not what it names: one line, exit 2."""

    exit_code = 2


@click.command("forget", short_help="Erase a client's or a person's data.")
@click.option("--client", help="Erase this client's data (its settings, decision maker, ledger rows...).")
@click.option("--partner", help="With --client: only this partner's rows of the client.")
@click.option("--email", metavar="ADDRESS", help="Erase this person's address wherever the store holds it.")
@click.option("--yes", is_flag=True, help="Erase now, in one transaction (without it: a preview only).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def forget_command(
    client: str | None, partner: str | None, email: str | None, yes: bool, as_json: bool
) -> None:
    """Erase a client's or a person's data (GDPR art. 17) from the store: the projection, the
    reminder ledger, the owner history, the outbox and the dead letters (kept as tombstones).

    Without --yes it only shows what would be erased, table by table, and what the store cannot
    reach (queues, exports, backups, logs: docs/operations.md, "Erasing a person's data"). It
    refuses while a notification naming them still waits in the outbox. One audit row in
    `erasures` records each erasure, with the SHA-256 of the client or address, never the value.
    """
    try:
        subject = subject_of(client, email, partner)
    except InvalidSubject as exc:
        raise CommandLineMistake(str(exc)) from None
    settings = load_settings()
    with checked_store(settings) as store:
        if not yes:
            report = preview(store, settings, subject)
        else:
            try:
                report = forget(store, settings, subject, user())
            except NotificationsPending as exc:
                raise click.ClickException(str(exc)) from None
            logs.get_logger("erasure").info(
                "erasure.done",
                operation_id=report.operation_id,
                subject_kind=subject.kind,
                user=user(),
                rows=report.total,
            )
    click.echo(json.dumps(report.as_dict(), indent=2) if as_json else described(report))


def described(report: ErasureReport) -> str:
    """The report as the command prints it: what, table by table, and what is out of reach."""
    subject = report.subject.describe()
    if report.operation_id is None:
        lines = [f"would erase {subject} (a preview: nothing changed; --yes erases)"]
    else:
        lines = [f"erased {subject}: operation {report.operation_id}, pseudonym {report.subject.pseudonym}"]
    rows = [
        {"table": table, "action": action, "rows": count}
        for table, actions in sorted(report.counts.items())
        for action, count in sorted(actions.items())
    ]
    lines += ["", render(rows, ["table", "action", "rows"]) if rows else "nothing in the store names them"]
    if report.pending:
        lines += [
            "",
            f"{report.pending} notification(s) naming them wait in the outbox: an erasure refuses until"
            " a worker has published them",
        ]
    lines += [
        f"erased before: {e.at:%Y-%m-%d %H:%M} UTC by {e.actor} (operation {e.operation_id})"
        for e in report.earlier
    ]
    lines += ["", "the store cannot reach (see docs/operations.md, 'Erasing a person's data'):"]
    lines += [f"  - {line}" for line in report.beyond]
    return "\n".join(lines)
