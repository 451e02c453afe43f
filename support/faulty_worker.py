"""The real worker with some handlers replaced by fault injectors, for tests and the chaos
runner: `python -m support.faulty_worker RenewalApproaching=crashes_for_poison_clients`.

Everything else is the production composition root (`worker.app`), configured from the same
RENEWALS_* environment: only the handler map differs, passed in as cosmicpython's bootstrap
passes its fakes.
"""

import sys

from events import INPUTS
from handlers import HANDLERS, Handler
from support import faults
from worker.app import run_until_signalled
from worker.cli.core import load_settings


def handlers_with(replacements: list[str]) -> dict[type, Handler]:
    """HANDLERS with `Type=fault_name` replacements (fault names are functions of support.faults)."""
    by_type = {kind.type: kind.model for kind in INPUTS}
    table: dict[type, Handler] = dict(HANDLERS)
    for replacement in replacements:
        type_name, _, fault = replacement.partition("=")
        if type_name not in by_type or not hasattr(faults, fault):
            raise SystemExit(f"unknown replacement {replacement!r}: use Type=fault from support.faults")
        table[by_type[type_name]] = getattr(faults, fault)
    return table


if __name__ == "__main__":
    run_until_signalled(load_settings(), handlers=handlers_with(sys.argv[1:]))
