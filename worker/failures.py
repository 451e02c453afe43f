"""The one wording of each failure a command can meet, beside its exit status (worker/exits.py).

Every command says a failure the same way, so that an operator (or a script grepping stderr)
meets one sentence per cause, whichever command met it. "Refused" means one thing only: the
broker or the database refused our credentials or access (exit 77). The table of which command
meets which failure, with its status, is docs/configuration.md#exit-statuses, held by
tests/e2e/test_failure_table.py.
"""

from worker.redaction import masked

TOPOLOGY_FIX = "`renewals topology --declare` creates it"


def one_line(error: BaseException | str) -> str:
    """An error as one line (libpq's messages span several), passwords masked."""
    return masked(" ".join(str(error).split()))


def broker_unreachable(broker: object, error: BaseException | str) -> str:
    """No node of RENEWALS_AMQP_URL answered (exit 1: an outage, which a retry may cure)."""
    return f"cannot reach the broker at {broker}: {one_line(error)}"


def missing_on_broker(kind: str, name: str, broker: object) -> str:
    """An exchange or queue of the topology is not declared on the broker (exit 1)."""
    return f"{kind} {name} does not exist on {broker} ({TOPOLOGY_FIX})"


def store_refusal(store_url: str, error: Exception) -> str:
    """The database refused us, or does not exist, or (SQLite) the file is no store (exit 77)."""
    if store_url.startswith("sqlite:"):
        return (
            f"{masked(store_url)}: {one_line(error)}; set RENEWALS_STORE_URL to the worker's store file,"
            " or move this file aside (the worker makes a new store where there is none)"
        )
    return (
        f"{masked(store_url)}: {one_line(error)}; check the database name, user and password in"
        " RENEWALS_STORE_URL, or create the database"
    )


def no_store(path: str) -> str:
    """A SQLite path with no store behind it, for a command that only reads one (exit 77)."""
    return f"no store at {path}: set RENEWALS_STORE_URL to the worker's store"


def store_unavailable(store_url: str, error: BaseException | str) -> str:
    """The database did not answer, or answered as no usable store (a damaged SQLite file):
    exit 1, which a retry or a restore may cure."""
    return f"cannot open the store {masked(store_url)}: {one_line(error)}"


def cannot_listen(where: str, error: OSError, fix: str) -> str:
    """A port another program holds, or an address this host does not have (exit 78)."""
    return f"cannot listen on {where}: {error.strerror or error} ({fix})"


def metrics_port_taken(port: int | None, host: str, error: OSError) -> str:
    """The probes' address cannot be bound (exit 78), by the worker or by `run --processes`."""
    return (
        f"RENEWALS_METRICS_PORT={port}: cannot listen on {host}:{port} ({error.strerror or error};"
        " another worker or program may hold the port): choose a free port, or stop what listens there"
    )
