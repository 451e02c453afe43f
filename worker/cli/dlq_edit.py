"""`renewals dlq edit`: change a dead letter's JSON body (and headers that are not ours), see the
difference, and send it back to the worker as a copy under a new message id
(`worker.dead_letters.editing` does it, for the console too); `renewals dlq edits`: what was
edited, before and after."""

import json
import sys
from typing import IO, NoReturn

import click

from worker import logs
from worker.cli.core import CannotWork, broker_of, load_settings
from worker.cli.dlq_options import dead_letter_records, find_one
from worker.dead_letters import DeadLetterError, ReplayPublisher, actions, audit, user
from worker.dead_letters.edit_diff import edit_document
from worker.dead_letters.guardrails import DISABLED, EditPolicy, EditRefused
from worker.printable import printable
from worker.redaction import masked

READ_AT_MOST = 16 * 1024 * 1024  # bytes of --body-file read; the model refuses far less (MAX_BODY_BYTES)


@click.command("edit", short_help="Edit a letter's body and retry it as a copy.")
@click.argument("letter", metavar="ID")
@click.option(
    "--body-file",
    required=True,
    type=click.File("rb"),
    help="The edited body: one JSON event (- reads standard input; then --yes is needed).",
)
@click.option(
    "--header",
    "headers",
    multiple=True,
    metavar="NAME=VALUE",
    help="Set a header that is not ours (NAME= removes it); repeatable. x-* error, routing and replay"
    " headers are locked.",
)
@click.option("--yes", is_flag=True, help="Send without asking (the difference is still shown).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def edit_command(
    letter: str, body_file: IO[bytes], headers: tuple[str, ...], yes: bool, as_json: bool
) -> None:
    """Edit a dead letter and retry it: its body (checked against the event's model before
    anything is sent) and headers that are not ours. Shows the difference and asks, then sends
    a copy with a new message id that names the original, to where a replay would go, with
    publisher confirms; the letter becomes replayed only once the broker confirms the copy.

    Off unless RENEWALS_DLQ_EDIT_ENABLED=true, and only for the types RENEWALS_DLQ_EDIT_TYPES
    lists. Whoever can run this against the store may edit (the console allows operators only).
    ID is #N (the record number `list` shows) or an event id with a single letter.
    """
    settings = load_settings()
    policy = EditPolicy.of(settings)
    if not policy.enabled:
        raise CannotWork(DISABLED)
    changes = dict(_header(text) for text in headers)
    body = body_file.read(READ_AT_MOST)
    log = logs.get_logger("renewals.dlq")
    with dead_letter_records() as records:
        found = find_one(records, letter)
        if len(found) > 1:
            numbers = ", ".join(f"#{one.summary.id}" for one in found)
            raise click.ClickException(
                f"{len(found)} dead letters have id {letter} ({numbers}): name one as #N"
            )
        letter_id = found[0].summary.id
        try:
            draft = actions.draft_edit(records, policy, letter_id, body, changes)
        except EditRefused as exc:
            _refused(exc, letter_id)
        if not as_json:
            shown = [printable(line) for line in draft.diff()]  # the message's text, escaped for the terminal
            click.echo("\n".join(shown) or "no change: the copy is sent as the letter came")
        if not yes:
            if body_file is sys.stdin.buffer or getattr(body_file, "name", None) == "<stdin>":
                raise click.ClickException("the body came from standard input: add --yes to send it")
            question = f"send this edited copy of #{letter_id} to {draft.to[0]} / {draft.to[1]}?"
            if not click.confirm(question, err=True):
                raise click.ClickException(f"nothing sent; #{letter_id} is unchanged")
        broker = broker_of(settings)
        try:
            with ReplayPublisher(broker, log=log) as publisher:
                edited = actions.edit(records, user(), draft, publisher)
        except EditRefused as exc:
            _refused(exc, letter_id)
        except DeadLetterError as exc:
            raise click.ClickException(f"{exc}; #{letter_id} is unchanged") from None
        except OSError as exc:
            raise click.ClickException(
                f"broker error on {broker}: {type(exc).__name__}: {masked(str(exc))};"
                f" #{letter_id} is unchanged"
            ) from None
    audit(
        log,
        "edited",
        result="published",
        letter=f"#{letter_id}",
        operation_id=edited.operation_id,
        message_id=edited.message_id,
    )
    if as_json:
        click.echo(json.dumps(edited.as_dict(), indent=2))
    else:
        click.echo(
            f"#{letter_id} edited and sent as {edited.message_id} to {edited.to[0]} / {edited.to[1]}"
            f" (operation {edited.operation_id}); #{letter_id} is replayed"
        )


def _header(text: str) -> tuple[str, str | None]:
    """NAME=VALUE as (name, value); NAME= as (name, None): remove it."""
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise click.BadParameter(f"{text[:40]!r}: write NAME=VALUE (NAME= removes it)", param_hint="--header")
    return name, value or None


def _refused(exc: EditRefused, letter_id: int) -> NoReturn:
    """One line per problem on standard error, then the reason: exit 78 for a setting's refusal,
    1 otherwise."""
    if exc.refusal in ("disabled", "not_allowed") and "RENEWALS_" in exc.problems[0]:
        raise CannotWork(exc.problems[0])
    if exc.refusal == "invalid":
        for problem in exc.problems:
            click.echo(printable(problem), err=True)
        raise click.ClickException(
            f"the edited body of #{letter_id} is refused by the event's model"
            f" ({len(exc.problems)} problem{'s' if len(exc.problems) > 1 else ''} above): nothing sent"
        )
    if len(exc.problems) > 1:
        for problem in exc.problems[:-1]:
            click.echo(printable(problem), err=True)
    raise click.ClickException(printable(exc.problems[-1]))


@click.command("edits", short_help="A letter's edits, before and after.")
@click.argument("letter", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="A JSON array, whole both ways, for scripts.")
def edits_command(letter: str, as_json: bool) -> None:
    """The edits of a dead letter (all letters of the event id, or #N): who sent which edited
    copy when, and the before and after (the difference; --json: both whole)."""
    with dead_letter_records() as records:
        documents = [
            edit_document(r) for one in find_one(records, letter) for r in records.edits(one.summary.id)
        ]
    if as_json:
        click.echo(json.dumps(documents, indent=2))
        return
    if not documents:
        click.echo(f"{letter} was never edited")
    for document in documents:
        head = f"#{document['letter']} {document['at']} {document['actor']}: sent {document['message_id']}"
        where = f"{document['exchange']} / {document['routing_key']} (operation {document['operation_id']})"
        click.echo(printable(f"{head} to {where}"))
        click.echo("\n".join(printable(line) for line in document["diff"]) or "no change")
