"""The `renewals` command: one console script, one subcommand per job."""

from typing import Any

import click

from worker.cli.console import console
from worker.cli.core import Refused, asyncapi, demo, run, schema, send, topology_command
from worker.cli.dlq import dlq
from worker.cli.forget import forget_command
from worker.cli.notifications import notifications
from worker.cli.owners import owners
from worker.cli.reminders import reminders_command
from worker.cli.store import store
from worker.failures import store_refusal
from worker.settings import Settings


class Renewals(click.Group):
    """The command group; a refusal from the broker or the database, in any command, is
    told here, once: one line and exit status 77, as the worker does."""

    def invoke(self, ctx: click.Context) -> Any:
        from worker.broker.endpoints import BrokerRefused
        from worker.store import StoreRefused

        try:
            return super().invoke(ctx)
        except BrokerRefused as exc:
            raise Refused(str(exc)) from None
        except StoreRefused as exc:
            settings = Settings()
            raise Refused(store_refusal(settings.store_url, exc)) from None


@click.group(cls=Renewals, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="renewal-routing")
def main() -> None:
    """Route partner clients' renewal reminders to the right people.

    Configuration comes from RENEWALS_* environment variables (docs/configuration.md);
    RENEWALS_AMQP_URL and RENEWALS_STORE_URL are the two most needed.
    """


for command in (
    run,
    send,
    demo,
    notifications,
    schema,
    asyncapi,
    topology_command,
    dlq,
    owners,
    store,
    console,
    forget_command,
    reminders_command,
):
    main.add_command(command)
