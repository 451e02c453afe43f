"""The `renewals` command: one console script, one subcommand per job."""

import click

from worker.cli.console import console
from worker.cli.core import asyncapi, demo, run, schema, send, topology_command
from worker.cli.dlq import dlq
from worker.cli.owners import owners
from worker.cli.store import store


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="renewal-routing")
def main() -> None:
    """Route partner clients' renewal reminders to the right people.

    Configuration comes from RENEWALS_* environment variables (see the README);
    RENEWALS_AMQP_URL and RENEWALS_STORE_URL are the two most needed.
    """


for command in (run, send, demo, schema, asyncapi, topology_command, dlq, owners, store, console):
    main.add_command(command)
