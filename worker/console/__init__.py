"""The operations console (`renewals console`): dead letters, replays, owners and health in the
browser and as a JSON API, closed unless a way in is configured (see docs/console.md).

Needs the `console` extra; `worker.cli.console` imports this package only when asked to serve,
so the worker runs without it.
"""

from worker.console.access import access_of
from worker.console.identity import ConsoleRefused
from worker.console.serve import console_of_settings, serve
from worker.console.users import Users

__all__ = ["ConsoleRefused", "Users", "access_of", "console_of_settings", "serve"]
