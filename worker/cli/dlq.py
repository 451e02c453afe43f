"""`renewals dlq`: the dead letters the worker recorded in its store: list, show, groups,
history, notes, replay, edit, archive, export and purge."""

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from worker import logs
from worker.cli.dlq_edit import edit_command, edits_command
from worker.cli.dlq_options import (
    dead_letter_records,
    everything_option,
    find_one,
    matching,
    oldest_first_option,
    require_choice,
    selection_options,
    to_original_option,
    when,
)
from worker.cli.dlq_output import (
    AUDIT_COLUMNS,
    GROUP_COLUMNS,
    HISTORY_COLUMNS,
    LIST_COLUMNS,
    PURGE_COLUMNS,
    audit_document,
    audit_row,
    described,
    group_row,
    history_row,
    listed,
    row,
)
from worker.cli.dlq_replay import replay_command
from worker.dead_letters import Routes, actions, as_dead_letter, audit, label, user
from worker.dead_letters.model import LetterFilter, StoredLetter
from worker.dead_letters.records import DeadLetterRecords
from worker.private_files import private_file
from worker.tools.tables import render

DONE_JSON = "One JSON object (operation_id, selection, counts), for scripts."


@click.group("dlq", short_help="Dead letters, as the store records them.")
def dlq() -> None:
    """Dead letters, as the worker records them in its store (RENEWALS_STORE_URL).

    The worker moves every letter that reaches the dead-letter queue into its store, so the
    queue is normally empty and reading changes nothing. A letter is new until someone acts:
    replayed, purged or archived; every action is in its history and in the audit. Replay
    republishes to the worker's input exchange under the event type's routing key (or, with
    --to-original, where its x-original-* headers say) with publisher confirms.

    ID is an event id, or #N, the record number `list` shows. WHEN is an ISO 8601 date or time
    (UTC unless it says otherwise) or an age: 90s, 15m, 2h, 7d; for `replay --at` it is a time
    to come, with its zone, or a delay: +30m, +2h. Listings show the newest first.
    """


@dlq.command("list", short_help="List dead letters, newest first.")
@selection_options
@to_original_option
@oldest_first_option
@click.option("--json", "as_json", is_flag=True, help="A JSON array, for scripts.")
def list_command(selection: LetterFilter, routes: Routes, oldest_first: bool, as_json: bool) -> None:
    """One row per dead letter, newest first, with where a replay would send it.

    With --limit N, the newest N (the oldest N with --oldest-first).
    """
    with dead_letter_records() as records:
        letters = matching(records, _newest(records, selection) if not oldest_first else selection)
        summaries = [listed(letter, routes) for letter in (letters if oldest_first else letters[::-1])]
    if as_json:
        click.echo(json.dumps(summaries, indent=2))
    elif not summaries:
        click.echo("no dead letters" if selection.statuses == {"new"} else "no dead letters in that state")
    else:
        columns = LIST_COLUMNS if selection.statuses == {"new"} else ["#", "status", *LIST_COLUMNS[1:]]
        click.echo(render([row(summary) for summary in summaries], columns))


def _newest(records: DeadLetterRecords, selection: LetterFilter) -> LetterFilter:
    """The selection with its `--limit N` taking the newest N (a filter's limit takes the oldest
    N, as actions do): their ids, found by one keyset query that reads no body."""
    if selection.limit is None:
        return selection
    page = records.page(replace(selection, limit=None), limit=selection.limit, newest_first=True)
    if not page.letters:
        return selection
    return replace(selection, limit=None, letter_ids=frozenset(letter.id for letter in page.letters))


@dlq.command(short_help="Show one dead letter in full.")
@click.argument("event_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def show(event_id: str, as_json: bool) -> None:
    """Every header, the body, the history and the notes of one dead letter."""
    with dead_letter_records() as records:
        matches = find_one(records, event_id)
    letter = matches[0]
    if len(matches) > 1:
        numbers = ", ".join(f"#{match.summary.id}" for match in matches)
        click.echo(f"note: {len(matches)} dead letters have id {event_id} ({numbers}); the first:", err=True)
    if as_json:
        record = {
            **as_dead_letter(letter).as_record(),
            **_record_fields(letter),
            "history": [history_row(entry) for entry in letter.history],
        }
        click.echo(json.dumps(record, indent=2))
    else:
        click.echo(described(letter))


def _record_fields(letter: StoredLetter) -> dict[str, Any]:
    summary = letter.summary
    return {
        "status": summary.status,
        "group": summary.group,
        "received_at": summary.received_at.isoformat(timespec="milliseconds"),
        "body_size": summary.body_size,
        "body_cut": letter.body_truncated,
        "problem": letter.problem,
        "erased_by": None if letter.erasure is None else letter.erasure.operation_id,
    }


@dlq.command(short_help="Dead letters grouped by how they failed.")
@selection_options
@click.option("--hours", default=24, show_default=True, type=click.IntRange(1, 24 * 31), help="Trend window.")
@click.option("--json", "as_json", is_flag=True, help="A JSON array, for scripts.")
def groups(selection: LetterFilter, hours: int, as_json: bool) -> None:
    """Dead letters grouped by reason, event type and what their detail says without its
    values, largest first, with first and last seen and letters per hour."""
    with dead_letter_records() as records:
        found = records.groups(selection, hours=hours)
    rows = [group_row(group) for group in found]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo("no dead letters")
    else:
        click.echo(render(rows, GROUP_COLUMNS))


@dlq.command(short_help="What happened to a dead letter.")
@click.argument("event_id", metavar="ID")
@oldest_first_option
@click.option("--json", "as_json", is_flag=True, help="A JSON array, for scripts.")
def history(event_id: str, oldest_first: bool, as_json: bool) -> None:
    """What happened to a dead letter: replays (when, by whom, where to, outcome), notes,
    archive and purge, newest first."""
    with dead_letter_records() as records:
        letters = find_one(records, event_id)
    entries = [(letter.summary.id, entry) for letter in letters for entry in letter.history]
    if not oldest_first:
        # newest first; entries of the same moment keep their order reversed (the sort is stable)
        entries = sorted(entries[::-1], key=lambda pair: pair[1].at, reverse=True)
    rows = [{"#": letter_id, **history_row(entry)} for letter_id, entry in entries]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    elif not rows:
        click.echo(f"nothing happened to {event_id} yet: it is {letters[-1].summary.status}")
    else:
        click.echo(render(rows, ["#", *HISTORY_COLUMNS]))


@dlq.command(short_help="Add a triage note to a dead letter.")
@click.argument("event_id", metavar="ID")
@click.argument("text")
@click.option("--json", "as_json", is_flag=True, help=DONE_JSON)
def note(event_id: str, text: str, as_json: bool) -> None:
    """Add a triage note to a dead letter (all letters of the event id, or #N)."""
    with dead_letter_records() as records:
        letters = find_one(records, event_id)
        done = actions.note(records, user(), [letter.summary.id for letter in letters], text)
    audit(logs.get_logger("renewals.dlq"), "noted", result="added", ids=[f"#{x.summary.id}" for x in letters])
    said(as_json, done, f"noted on {', '.join(f'#{letter.summary.id}' for letter in letters)}")


dlq.add_command(replay_command)
dlq.add_command(edit_command)
dlq.add_command(edits_command)


@dlq.command(short_help="Archive the selected letters (with --yes).")
@selection_options
@everything_option
@click.option("--older-than", metavar="AGE", callback=when, help="Failed before this age ago (7d, 12h...).")
@click.option("--yes", is_flag=True, help="Really archive them.")
@click.option("--json", "as_json", is_flag=True, help=DONE_JSON)
def archive(
    selection: LetterFilter, everything: bool, older_than: datetime | None, yes: bool, as_json: bool
) -> None:
    """List the selected unresolved dead letters, or with --yes mark them archived: out of the
    way, kept with their history until DEAD_LETTER_RETENTION_DAYS have passed."""
    if older_than is not None:
        until = older_than if selection.until is None else min(older_than, selection.until)
        selection = LetterFilter(**{**_fields(selection), "until": until})
    require_choice(selection, everything, "archive")
    with dead_letter_records() as records:
        if not yes:
            previewed("archive", matching(records, selection), as_json)
        done = actions.archive(records, user(), selection)
    audit(
        logs.get_logger("renewals.dlq"),
        "archived",
        result="completed",
        selection=selection.describe(),
        archived=done.counts["archived"],
    )
    said(as_json, done, f"archived {done.counts['archived']} dead letters")


def previewed(verb: str, letters: list[StoredLetter], as_json: bool) -> NoReturn:
    """What a purge or an archive without --yes does: list the letters it would take (a JSON
    object with --json), change nothing, and end with one line naming --yes (exit 1)."""
    rows = [row(listed(letter, None)) for letter in letters]
    if as_json:
        click.echo(json.dumps({"would_" + verb: len(rows), "letters": rows}, indent=2))
    elif rows:
        click.echo(render(rows, PURGE_COLUMNS))
    raise click.ClickException(f"would {verb} {len(rows)}; nothing {verb}d without --yes")


def said(as_json: bool, done: actions.Done, line: str) -> None:
    """What an action did: one line, or with --json one object (its operation id, selection, counts)."""
    click.echo(json.dumps(done.as_dict()) if as_json else line)


def _fields(selection: LetterFilter) -> dict[str, Any]:
    return {name: getattr(selection, name) for name in LetterFilter.__dataclass_fields__}


@dlq.command(short_help="Write the selected letters as JSON lines.")
@selection_options
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="JSON lines file (- for stdout); created 0600, never over an existing file unless --force.",
)
@click.option("--force", is_flag=True, help="Replace an existing file (never through a symlink).")
def export(selection: LetterFilter, out: str, force: bool) -> None:
    """Write the selected dead letters (headers, properties, body, status) as JSON lines."""
    with dead_letter_records() as records:
        letters = matching(records, selection)
        with _output(out, force) as stream:
            for letter in letters:
                stream.write(
                    json.dumps({**as_dead_letter(letter).as_record(), **_record_fields(letter)}) + "\n"
                )
        actions.exported(records, user(), selection, len(letters), out)
    click.echo(f"exported {len(letters)} dead letters to {out} (none changed)", err=out == "-")


@contextmanager
def _output(path: str, force: bool) -> Iterator[IO[str]]:
    """A file only the owner can read (0600), written through a private temporary file and
    renamed into place: never over an existing one unless `force`, never through a symlink."""
    if path == "-":
        yield sys.stdout
        return
    target = Path(path)
    if target.is_symlink():
        raise click.ClickException(f"{path} is a symbolic link: name the file itself")
    if not force and target.exists():
        raise click.ClickException(f"{path} exists: choose another file, or --force to replace it")
    try:
        with private_file(target, replace=force) as stream:
            yield stream
    except FileExistsError:
        raise click.ClickException(f"{path} exists: choose another file, or --force to replace it") from None
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror or exc}") from None


@dlq.command("purge", short_help="Purge the selected letters (with --yes).")
@selection_options
@everything_option
@click.option("--yes", is_flag=True, help="Really purge them.")
@click.option("--json", "as_json", is_flag=True, help=DONE_JSON)
def purge_command(selection: LetterFilter, everything: bool, yes: bool, as_json: bool) -> None:
    """List the selected dead letters, or with --yes purge them and say how many: they leave
    every list and are deleted, history and all, after DEAD_LETTER_RETENTION_DAYS."""
    require_choice(selection, everything, "purge")
    with dead_letter_records() as records:
        letters = matching(records, selection)
        if not yes:
            previewed("purge", letters, as_json)
        shown = [letter.summary.id for letter in letters]  # what was shown, not what arrived since
        done = actions.purge(records, user(), selection, shown=shown)
        count = done.counts["purged"]
    audit(
        logs.get_logger("renewals.dlq"),
        "purged",
        result="completed",
        selection=selection.describe(),
        purged=count,
        ids=[label(as_dead_letter(letter)) for letter in letters],
    )
    said(as_json, done, f"purged {count} dead letters")


@dlq.command(short_help="The latest replays and their progress.")
@click.option(
    "--limit", default=20, show_default=True, type=click.IntRange(min=1), help="At most N, newest first."
)
@oldest_first_option
@click.option("--json", "as_json", is_flag=True, help="A JSON array, for scripts.")
def replays(limit: int, oldest_first: bool, as_json: bool) -> None:
    """The latest replay operations, newest first, with their progress."""
    from worker.cli.dlq_output import OPERATION_COLUMNS, operation_row

    with dead_letter_records() as records:
        found = records.operations(limit=limit)
    rows = [operation_row(operation) for operation in (found[::-1] if oldest_first else found)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        click.echo(render(rows, OPERATION_COLUMNS) if rows else "no replays yet")


@dlq.command(short_help="Cancel a running or scheduled replay.")
@click.argument("operation_id", metavar="OP_ID")
@click.option("--json", "as_json", is_flag=True, help="The operation as one JSON object, for scripts.")
def cancel(operation_id: str, as_json: bool) -> None:
    """Ask a running replay to stop, from anywhere: it stops after the letter in hand. A
    scheduled one (`replay --at`) ends cancelled at once, nothing sent."""
    from worker.cli.dlq_output import operation_row
    from worker.dead_letters.records import UnknownOperation

    with dead_letter_records() as records:
        try:
            found = actions.cancel_replay(records, user(), operation_id)
        except UnknownOperation as exc:
            raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(operation_row(found), indent=2))
        return
    click.echo(
        f"replay {operation_id}: {found.status}"
        + (", cancel requested" if found.cancel_requested and found.status == "running" else "")
    )


@dlq.command("audit", short_help="Who did what to dead letters.")
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=1), help="At most N, newest first."
)
@click.option("--operation", "operation_id", metavar="OP_ID", help="Only this operation's rows.")
@oldest_first_option
@click.option("--json", "as_json", is_flag=True, help="A JSON array, for scripts.")
def audit_command(limit: int, operation_id: str | None, oldest_first: bool, as_json: bool) -> None:
    """Who did what to dead letters, newest first: this command's actions and the console's
    alike (the console's Audit page shows the same rows)."""
    with dead_letter_records() as records:
        entries = actions.audit(records, limit=limit, of=operation_id)
    entries = entries[::-1] if oldest_first else entries
    if as_json:
        click.echo(json.dumps([audit_document(entry) for entry in entries], indent=2))
    elif not entries:
        click.echo("nothing audited yet")
    else:
        click.echo(render([audit_row(entry) for entry in entries], AUDIT_COLUMNS))
