"""The `renewals` command: one console script, one subcommand per job. Each subcommand's
module is imported when it is asked for (Click's lazy group), so `renewals run` starts without
the dead-letter tools, the console and the erasure it does not use."""

import importlib
from typing import Any

import click

from worker.failures import store_refusal
from worker.settings import Settings

# Each subcommand: the module that defines it and the name of its Click command there.
COMMANDS = {
    "run": ("worker.cli.core", "run"),
    "send": ("worker.cli.core", "send"),
    "demo": ("worker.cli.core", "demo"),
    "notifications": ("worker.cli.notifications", "notifications"),
    "schema": ("worker.cli.core", "schema"),
    "asyncapi": ("worker.cli.core", "asyncapi"),
    "topology": ("worker.cli.core", "topology_command"),
    "dlq": ("worker.cli.dlq", "dlq"),
    "owners": ("worker.cli.owners", "owners"),
    "store": ("worker.cli.store", "store"),
    "console": ("worker.cli.console", "console"),
    "forget": ("worker.cli.forget", "forget_command"),
    "reminders": ("worker.cli.reminders", "reminders_command"),
}


class Renewals(click.Group):
    """The command group; a refusal from the broker or the database, in any command, is
    told here, once: one line and exit status 77, as the worker does."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, name = COMMANDS[cmd_name]
        command: click.Command = getattr(importlib.import_module(module), name)
        return command

    def invoke(self, ctx: click.Context) -> Any:
        from worker.broker.endpoints import BrokerRefused
        from worker.cli.core import Refused
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
