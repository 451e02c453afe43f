"""The worker's own commands: run, send, demo, schema, asyncapi, topology."""

import json
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING

import click
from amqp.exceptions import NotFound

from events import json_schemas
from worker import logs
from worker.broker.endpoints import Broker, BrokerRefused, BrokerUnreachable, from_settings
from worker.exits import EX_CONFIG, EX_REFUSED
from worker.failures import broker_unreachable, missing_on_broker, no_store
from worker.private_files import write_private
from worker.redaction import masked
from worker.settings import ConfigurationError, Settings, unknown_variables
from worker.settings import load_settings as settings_from_environment
from worker.tools.tables import render

if TYPE_CHECKING:
    from worker.broker.topology import BrokerVersion


def broker_of(settings: Settings) -> Broker:
    """The configured broker for a command; a malformed URL is one clear line."""
    try:
        return from_settings(settings, heartbeat=0)
    except ValueError as exc:
        raise click.ClickException(f"invalid RENEWALS_AMQP_URL: {exc}") from None


class CannotWork(click.ClickException):
    """A configuration that cannot work: one line, exit status 78 (sysexits' EX_CONFIG)."""

    exit_code = EX_CONFIG


class Refused(click.ClickException):
    """The broker or the database refused us, or is not there: one line with the fix, exit 77."""

    exit_code = EX_REFUSED


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment; a bad value is one line naming the setting and the fix,
    exit status 78, before anything is opened."""
    try:
        settings = settings_from_environment(**overrides)
    except ConfigurationError as exc:
        raise CannotWork(str(exc)) from None
    logs.configure(settings.log_level, settings.log_format)
    for name, closest in unknown_variables():
        logs.get_logger("settings").warning(
            "settings.unknown_variable",
            variable=name,
            closest=closest,
            hint=f"did you mean {closest}?" if closest else "see docs/configuration.md for the settings",
        )
    return settings


def require_existing_store(settings: Settings) -> None:
    """Opening a SQLite URL creates the file: a path with no store is a typo, and a database
    that does not exist (exit 77), for every command that reads a store."""
    url = settings.store_url
    if url.startswith("sqlite:"):
        path = url.removeprefix("sqlite://").removeprefix("/")
        if path and path != ":memory:" and not Path(path).exists():
            raise Refused(no_store(path))


@click.command(short_help="Run the worker until SIGTERM or SIGINT.")
@click.option(
    "--processes",
    type=click.IntRange(1, 64),
    help="Worker processes to run and supervise on this machine (default: RENEWALS_PROCESSES, 1).",
)
@click.option("--supervised-by", type=int, hidden=True, help="The supervisor's pid (set by --processes).")
def run(processes: int | None, supervised_by: int | None) -> None:
    """Run the worker until SIGTERM or SIGINT (graceful: finish the batch, publish, ack)."""
    from worker.running import follow_parent, run_configured

    settings = load_settings(**({} if processes is None else {"processes": processes}))
    if supervised_by is not None:
        follow_parent(supervised_by)
    run_configured(settings)


@click.command(short_help="Publish events from a JSON or NDJSON file.")
@click.argument("source", type=click.File("r"), metavar="FILE|-")
@click.option("--no-check", is_flag=True, help="Send events even if the worker would dead-letter them.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (sent, exchange), for scripts.")
def send(source: IO[str], no_check: bool, as_json: bool) -> None:
    """Publish events from a JSON or NDJSON FILE (or - for standard input).

    Missing CloudEvents attributes (specversion, id, source, time) are filled in, so a
    trial file can hold just `type` and `data`. Events that the worker would dead-letter are
    not sent (nothing is), one line each, unless --no-check is given.
    """
    from worker.tools.event_files import check, complete, publish, read_events

    settings = load_settings()
    try:
        events = [complete(event, "urn:renewal-routing:send") for event in read_events(source)]
    except ValueError as exc:
        raise click.ClickException(f"cannot read events: {exc}") from None
    problems = [] if no_check else check(events)
    if problems:
        raise click.ClickException(
            "nothing sent: the worker would dead-letter these (--no-check sends them anyway):\n  "
            + "\n  ".join(problems)
        )
    broker = broker_of(settings)
    try:
        count = publish(broker, settings.events_exchange, events)
    except BrokerRefused:
        raise  # told once, by the command group: exit 77
    except BrokerUnreachable as exc:
        raise click.ClickException(broker_unreachable(broker, exc)) from None
    except NotFound:
        raise click.ClickException(missing_on_broker("exchange", settings.events_exchange, broker)) from None
    except Exception as exc:
        raise click.ClickException(
            f"publishing to {broker} failed: {type(exc).__name__}: {masked(str(exc))}"
        ) from None
    if as_json:
        click.echo(json.dumps({"sent": count, "exchange": settings.events_exchange}))
        return
    click.echo(f"sent {count} event{'' if count == 1 else 's'} to {settings.events_exchange}")


@click.command(short_help="Run the shipped scenario through a worker.")
@click.option("--timeout", default=20.0, show_default=True, help="Seconds to wait for the results.")
def demo(timeout: float) -> None:
    """Run the shipped scenario through a real worker and print who was notified.

    Uses the configured broker, under throw-away names (renewals-demo-*), and a temporary
    store: nothing of a real deployment is touched.
    """
    from worker.tools.demo import report, run_demo

    settings = load_settings(log_level="error")
    try:
        result = run_demo(settings, timeout)
    except BrokerRefused:
        raise  # told once, by the command group: exit 77
    except BrokerUnreachable as exc:
        raise click.ClickException(broker_unreachable(masked(settings.amqp_url), exc)) from None
    except Exception as exc:
        raise click.ClickException(
            f"demo failed against {masked(settings.amqp_url)}: {type(exc).__name__}: {masked(str(exc))}"
        ) from None
    click.echo(
        render(report(result), ["event", "client", "result", "resolved_from", "to", "cc", "fallback", "note"])
    )
    click.echo(f"\nnotifications: {len(result.notifications)}, dead letters: {len(result.dead_letters)}")


@click.command(short_help="Print the events' JSON Schemas.")
@click.option(
    "--out", type=click.Path(dir_okay=False, writable=True), help="Write to this file instead of stdout."
)
def schema(out: str | None) -> None:
    """Print the JSON Schemas of RenewalApproaching, OwnerChanged and NotificationRequested."""
    text = json.dumps(json_schemas(), indent=2)
    if out:
        write_private(Path(out), text + "\n")
    else:
        click.echo(text)


@click.command(short_help="Print the contract as an AsyncAPI document.")
@click.option(
    "--out", type=click.Path(dir_okay=False, writable=True), help="Write to this file instead of stdout."
)
def asyncapi(out: str | None) -> None:
    """Print the worker's contract as an AsyncAPI 3.0.0 document (YAML).

    Built from the worker's own topology, message registry and models, with the configured
    names (RENEWALS_*); docs/asyncapi.yaml, the published contract, is this with the defaults.
    """
    from worker.tools.asyncapi import render

    text = render(load_settings())
    if out:
        write_private(Path(out), text)
    else:
        click.echo(text, nl=False)


@click.command("topology", short_help="Print (or declare) the broker topology.")
@click.option("--declare", "declare_now", is_flag=True, help="Declare it on the configured broker.")
@click.option(
    "--migrate",
    is_flag=True,
    help="Bring queues an earlier release declared with other arguments up to this plan, keeping"
    " every message (stop the workers first: it refuses while consumers are attached).",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --migrate: migrate even while consumers are attached. The broker cancels them as"
    " each queue is deleted; workers of this release finish what they hold and subscribe again.",
)
@click.option(
    "--broker-version",
    metavar="X.Y",
    help="Describe the plan for this RabbitMQ series (default: ask the configured broker).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def topology_command(
    declare_now: bool, migrate: bool, force: bool, broker_version: str | None, as_json: bool
) -> None:
    """Print the exchanges, queues and bindings the worker declares (and optionally declare them).

    The plan depends on the broker's series: on RabbitMQ 4.x every queue but the worker's
    carries `x-delivery-limit: -1` (no limit), which 3.10 does not need (and would misread).
    """
    from worker.broker.migration import ConsumersAttached, Migration
    from worker.broker.topology import BrokerVersion, declare, topology

    if force and not migrate:
        raise click.UsageError("--force only applies to --migrate")
    settings = load_settings()
    broker = broker_of(settings)
    if broker_version is not None and not declare_now and not migrate:
        version = BrokerVersion.parse(broker_version)
    else:
        version = _ask_version(broker, offer_version=not declare_now and not migrate)
    plan = topology(settings, version)
    if as_json:
        click.echo(json.dumps({"rabbitmq": str(version), **plan.as_dict()}, indent=2))
    else:
        described = plan.as_dict()
        click.echo(f"for RabbitMQ {version}")
        click.echo(render(described["exchanges"], ["name", "type", "arguments"]))
        click.echo()
        click.echo(render(described["queues"], ["name", "arguments"]))
        click.echo()
        click.echo(render(described["bindings"], ["exchange", "queue", "routing_key"]))
    if migrate:
        say = lambda line: click.echo(line, err=True)  # noqa: E731
        log = logs.get_logger("topology")
        migration = Migration(broker, plan, version, log=log, progress=say, force=force)
        try:
            migrated = migration.run()
        except ConsumersAttached as exc:
            raise CannotWork(f"refusing to migrate on {broker}: {exc}") from None
        except Exception as exc:
            raise click.ClickException(
                f"migrating on {broker} failed: {type(exc).__name__}: {masked(str(exc))}"
                " (run it again: it resumes where it stopped, and loses nothing)"
            ) from None
        kept = sum(m.moved for m in migrated)
        click.echo(
            f"migrated {len(migrated)} queue(s) on {broker}, {kept} message(s) kept"
            if migrated
            else f"nothing to migrate on {broker}: every queue is as this release declares it",
            err=True,
        )
    elif declare_now:
        try:
            connection, _ = broker.connect()
            try:
                declare(connection.channel(), plan)
            finally:
                connection.close()
        except BrokerRefused:
            raise  # told once, by the command group: exit 77
        except BrokerUnreachable as exc:
            raise click.ClickException(broker_unreachable(broker, exc)) from None
        except Exception as exc:
            raise click.ClickException(
                f"declaring on {broker} failed: {type(exc).__name__}: {masked(str(exc))}"
            ) from None
        click.echo(
            f"declared on {broker}", err=as_json or sys.stderr.isatty()
        )  # --json: one object on stdout


def _ask_version(broker: Broker, *, offer_version: bool) -> "BrokerVersion":
    from worker.broker.topology import BrokerVersion

    try:
        connection, _ = broker.connect()
    except BrokerRefused:
        raise  # told once, with its fix and exit status 77, by the command group
    except Exception as exc:
        offer = "; give --broker-version X.Y to print the plan without it" if offer_version else ""
        raise click.ClickException(broker_unreachable(broker, exc) + offer) from None
    try:
        return BrokerVersion.of(connection)
    finally:
        connection.close()
