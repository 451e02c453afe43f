"""The `renewals` command reads whole: every command's summary in its group's `--help` ends
where its sentence ends (Click cuts a first sentence longer than 45 characters with "..."),
and the shared options' help reads as a sentence. (The README's shell completion is run by
tests/e2e/test_readme.py.)"""

import re
from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from worker.cli import main

CLICK_SHORT_HELP = 45  # the width Click's get_short_help_str cuts at by default


def commands(
    group: click.Group = main, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command below `group`, with the words that name it."""
    context = click.Context(group)
    for name in sorted(group.list_commands(context)):  # the lazy group imports each as asked
        command = group.get_command(context, name)
        assert command is not None, name
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def groups() -> list[tuple[str, ...]]:
    return [(), *(path for path, command in commands() if isinstance(command, click.Group))]


@pytest.mark.parametrize("path", [path for path, _ in commands()], ids=" ".join)
def test_no_command_s_summary_is_cut_mid_phrase(path: tuple[str, ...]) -> None:
    """The command's summary fits Click's 45 characters whole, and ends with a full stop."""
    command = dict(commands())[path]
    summary = command.get_short_help_str(CLICK_SHORT_HELP)
    assert not summary.endswith("..."), f"`renewals {' '.join(path)}`: {summary!r} is cut"
    assert summary.endswith("."), f"`renewals {' '.join(path)}`: {summary!r} is not a sentence"


@pytest.mark.parametrize("path", groups(), ids=lambda path: " ".join(("renewals", *path)))
def test_every_group_s_help_lists_its_commands_whole(path: tuple[str, ...]) -> None:
    """`renewals [GROUP] --help`, as printed on an 80-column terminal: no summary ends in "..."."""
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:\n", 1)[1].splitlines()
    assert listed and not [line for line in listed if line.rstrip().endswith("...")], result.output


def test_the_text_filter_s_help_reads_as_a_sentence() -> None:
    """`--text`'s help says what is searched, in words that read whole."""
    result = CliRunner().invoke(main, ["dlq", "list", "--help"], terminal_width=200)
    [line] = [line for line in result.output.splitlines() if line.strip().startswith("--text")]
    described = line.split("TEXT", 1)[1].strip()
    assert re.fullmatch(r"Only letters with TEXT \(any case\) in their [\w ,]+ of their body\.", described), (
        described
    )
