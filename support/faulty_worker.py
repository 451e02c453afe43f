"""The real worker with some handlers replaced by fault injectors, for tests and the chaos
runner: `python -m support.faulty_worker RenewalApproaching=crashes_for_poison_clients`, and
`records=dies_after_recording` for dead-letter records that die between commit and ack.

Everything else is the production composition root (`worker.app`), configured from the same
RENEWALS_* environment: only the handler map differs, passed in as cosmicpython's bootstrap
passes its fakes.
"""

import sys

from events import INPUTS
from handlers import HANDLERS, Handler
from support import faults
from worker.cli.core import load_settings
from worker.dead_letters.drain import Records
from worker.dead_letters.records import DeadLetterRecords
from worker.running import run_until_signalled


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


def records_with(replacements: list[str]) -> Records:
    """The dead-letter records a `records=fault` replacement names, else the real ones."""
    for replacement in replacements:
        name, _, fault = replacement.partition("=")
        if name == "records":
            if fault not in faults.RECORDS:
                raise SystemExit(f"unknown records fault {fault!r}: use one of {sorted(faults.RECORDS)}")
            return faults.RECORDS[fault]
    return DeadLetterRecords


if __name__ == "__main__":
    replacements = sys.argv[1:]
    handlers = handlers_with([r for r in replacements if not r.startswith("records=")])
    run_until_signalled(load_settings(), handlers=handlers, records=records_with(replacements))
