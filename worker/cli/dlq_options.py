"""What every `renewals dlq` command shares: the filters, the store's records, and how an ID
names letters."""

import functools
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click

from worker.cli.core import load_settings
from worker.cli.stores import checked_store
from worker.dead_letters import InvalidRate, Routes, check_rate, parse_at, parse_when
from worker.dead_letters.model import STATUSES, LetterFilter, Status, StoredLetter
from worker.dead_letters.records import DeadLetterRecords

Command = Callable[..., None]


def when(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    try:
        return None if value is None else parse_when(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def scheduled_for(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    """`--at WHEN`: a time with its zone or a delay (+30m), never one already past."""
    try:
        return None if value is None else parse_at(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


class Rate(click.ParamType[float]):
    """Letters per second for a replay: a finite number above 0 (and at most the largest rate)."""

    name = "rate"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            rate = check_rate(float(value))
        except InvalidRate as exc:
            self.fail(str(exc), param, ctx)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of letters per second", param, ctx)
        assert rate is not None  # float() never gives None
        return rate


def _statuses(values: Sequence[str]) -> frozenset[Status]:
    if not values:
        return frozenset({"new"})
    if "all" in values:
        return frozenset(STATUSES)
    return frozenset(status for status in STATUSES if status in values)


def selection_options(command: Command) -> Command:
    """The shared filters, handed to the command as one `selection` argument."""

    @functools.wraps(command)
    def wrapper(
        reason: Sequence[str],
        type_: Sequence[str],
        id_: Sequence[str],
        group: Sequence[str],
        text: str | None,
        status: Sequence[str],
        since: datetime | None,
        until: datetime | None,
        limit: int | None,
        **rest: Any,
    ) -> None:
        filters = LetterFilter(
            reasons=frozenset(reason),
            types=frozenset(type_),
            event_ids=frozenset(id_),
            groups=frozenset(group),
            statuses=_statuses(status),
            text=text or None,
            since=since,
            until=until,
            limit=limit,
        )
        command(selection=filters, **rest)

    options = [
        click.option("--reason", multiple=True, help="Only this reason (repeatable)."),
        click.option("--type", "type_", multiple=True, help="Only this event type (repeatable)."),
        click.option("--id", "id_", multiple=True, help="Only this event id (repeatable)."),
        click.option(
            "--group", multiple=True, help="Only this group, as `dlq groups` names it (repeatable)."
        ),
        click.option(
            "--text",
            help="Only letters with TEXT (any case) in their ids, type, reason, detail or the first"
            " part of their body.",
        ),
        click.option(
            "--status",
            multiple=True,
            type=click.Choice([*STATUSES, "all"]),
            help="Only letters in this state (repeatable; default: new).",
        ),
        click.option("--since", metavar="WHEN", callback=when, help="Failed at or after WHEN."),
        click.option("--until", metavar="WHEN", callback=when, help="Failed before WHEN."),
        click.option(
            "--limit",
            type=click.IntRange(min=1),
            help="At most N: an action takes the oldest N; `list` shows the newest N.",
        ),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def oldest_first_option(command: Command) -> Command:
    """`--oldest-first`: the listing commands show the newest first unless it is given."""
    return click.option("--oldest-first", is_flag=True, help="Oldest first (default: newest first).")(command)


def everything_option(command: Command) -> Command:
    return click.option("--all", "everything", is_flag=True, help="Every dead letter.")(command)


def to_original_option(command: Command) -> Command:
    """`--to-original`, handed to the command as the `routes` replays may take."""

    @functools.wraps(command)
    def wrapper(to_original: bool, **rest: Any) -> None:
        command(routes=Routes.of(load_settings(), to_original=to_original), **rest)

    return click.option(
        "--to-original",
        is_flag=True,
        help="Trust the x-original-* (or x-death) headers for where a replay goes, instead of the"
        " input exchange under the event type's routing key. They can be forged: nothing ever goes"
        " where the worker publishes (the notifications exchange, the default exchange).",
    )(wrapper)


@contextmanager
def dead_letter_records() -> Iterator[DeadLetterRecords]:
    """The configured store's dead letters (worker/cli/stores.py: a failure is one line)."""
    with checked_store() as store:
        yield DeadLetterRecords(store)


def require_choice(selection: LetterFilter, everything: bool, verb: str) -> None:
    if not selection.filtered and not everything:
        raise click.ClickException(f"say which to {verb}: give a filter (--reason, --id, ...) or --all")
    if selection.filtered and everything:
        raise click.ClickException("--all cannot be combined with filters")


def matching(records: DeadLetterRecords, selection: LetterFilter) -> list[StoredLetter]:
    """The selected letters in full, oldest first; an error if filters were given and none match."""
    letters = list(records.letters(selection))
    if not letters and selection.filtered:
        raise click.ClickException(
            f"no dead letter matches {selection.describe()} ({records.count()} unresolved in the store)"
        )
    return letters


def find_one(records: DeadLetterRecords, name: str) -> list[StoredLetter]:
    """The letters an ID names: `#N` is the record number `list` shows, anything else an event
    id (every letter of it, oldest first); an error if there is none."""
    if name.startswith("#") and name[1:].isdigit():
        letter = records.get(int(name[1:]))
        found = [] if letter is None else [letter]
    else:
        found = records.find(name)
    if not found:
        raise click.ClickException(f"no dead letter with id {name} (see `renewals dlq list --status all`)")
    return found
