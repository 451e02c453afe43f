"""The configured store as every command that reads or changes it opens it: there, and at this
release's schema. A failure is one line: exit 77 for a store that is not there or refuses us (told
by the command group), 78 for one of another release, 1 for any other (worker/exits.py)."""

from collections.abc import Iterator
from contextlib import contextmanager

import click

from worker.cli.core import CannotWork, load_settings, require_existing_store
from worker.failures import one_line, store_unavailable
from worker.redaction import masked
from worker.settings import Settings
from worker.store import SchemaTooNew, SchemaTooOld, SqlStore, StoreRefused, StoreUnavailable
from worker.store.configured import open_configured_store


@contextmanager
def checked_store(settings: Settings | None = None) -> Iterator[SqlStore]:
    """The configured store (`settings`, or the environment's), its schema checked."""
    settings = settings or load_settings()
    require_existing_store(settings)
    try:
        store = open_configured_store(settings)
        store.check_schema()
    except (SchemaTooOld, SchemaTooNew) as exc:
        raise CannotWork(str(exc)) from None
    except StoreRefused:
        raise  # told once, by the command group: exit 77, as every command
    except Exception as exc:
        raise click.ClickException(
            store_unavailable(settings.store_url, f"{type(exc).__name__}: {exc}")
        ) from None
    try:
        yield store
    except StoreUnavailable as exc:
        raise click.ClickException(
            f"the store {masked(settings.store_url)} is unavailable: {one_line(exc)}"
        ) from None
    finally:
        store.close()
