"""`renewals store migrate|status`: the store's schema version, and bringing it up to date.

The upgrade order for several workers: `renewals store migrate` with the new release (under
the schema lock, safe while the old workers run: migrations only add), then replace the
workers one by one. A worker meeting a schema newer than it knows will not start.
"""

import json
from collections.abc import Iterator
from contextlib import contextmanager

import click

from worker.cli.core import CannotWork, load_settings, require_existing_store
from worker.failures import one_line, store_unavailable
from worker.redaction import masked
from worker.settings import Settings
from worker.store import SCHEMA_VERSION, SchemaTooNew, SqlStore, StoreError, StoreUnavailable
from worker.store.configured import open_configured_store


@click.group("store", short_help="The store's schema version; migrating it.")
def store() -> None:
    """The worker's store (RENEWALS_STORE_URL): its schema version, and migrating it."""


@store.command(short_help="Apply the migrations the store is missing.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (store, before, after), for scripts.")
def migrate(as_json: bool) -> None:
    """Apply the schema migrations the store is missing, under the schema lock.

    Safe to run while workers are running, and from several places at once: one migrates,
    the others find nothing left to do. Run it with a new release before replacing the
    workers (migrations only add, so the previous release keeps working meanwhile).
    """
    settings = load_settings()
    with _opened(settings) as opened:
        try:
            before, after = opened.migrate()
        except SchemaTooNew as exc:  # a store of another release, as `renewals run` says: exit 78
            raise CannotWork(str(exc)) from None
    where = masked(settings.store_url)
    if as_json:
        facts = {"store": where, "before": before, "after": after, "migrated": before != after}
        click.echo(json.dumps(facts))
    elif before == after:
        click.echo(f"{where} is at schema version {after}, the latest this release knows: nothing to do")
    else:
        click.echo(f"migrated {where} from schema version {before} to {after}")


@store.command(short_help="The store's schema version and this one's.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
def status(as_json: bool) -> None:
    """Print the store's schema version beside the one this release needs.

    States: `current`; `older` (run `renewals store migrate`; workers with
    RENEWALS_STORE_MIGRATE=true migrate at start); `newer` (migrated by a later release,
    which this one will not run against); `empty` (never migrated).
    """
    settings = load_settings()
    require_existing_store(settings)
    with _opened(settings) as opened:
        found = opened.schema_version()
    state = "empty" if found == 0 else "current" if found == SCHEMA_VERSION else "older"
    state = "newer" if found > SCHEMA_VERSION else state
    facts = {"store": masked(settings.store_url), "version": found, "latest": SCHEMA_VERSION, "state": state}
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    advice = {
        "current": "",
        "empty": ": run `renewals store migrate` (or start a worker)",
        "older": ": run `renewals store migrate`",
        "newer": ": migrated by a later release; this release's workers will not start on it",
    }[state]
    click.echo(
        f"{facts['store']}: schema version {found}, this release's is {SCHEMA_VERSION} ({state}){advice}"
    )


@contextmanager
def _opened(settings: Settings) -> Iterator[SqlStore]:
    """The configured store, closed afterwards; an unreachable store is one clear line."""
    try:
        opened = open_configured_store(settings)
    except (StoreUnavailable, ValueError) as exc:
        raise click.ClickException(store_unavailable(settings.store_url, exc)) from None
    try:
        yield opened
    except StoreUnavailable as exc:
        raise click.ClickException(
            f"the store {masked(settings.store_url)} went away: {one_line(exc)}"
        ) from None
    except (StoreError, click.ClickException):
        raise  # told by the command group, or already one line
    except Exception as exc:  # a damaged store, say: one line, as every command says it
        raise click.ClickException(
            store_unavailable(settings.store_url, f"{type(exc).__name__}: {exc}")
        ) from None
    finally:
        opened.close()
