"""What one run is asked to do: the stream's seed and size, the deployment, the faults."""

from dataclasses import dataclass, field
from typing import Literal

FAULTS = ("kill", "sigterm", "broker-restart", "close-connection", "node-stop", "pg-restart", "pg-cut")


@dataclass(frozen=True)
class Options:
    seed: int = 1
    events: int = 20_000
    rate: float = 1000.0
    workers: int = 1
    store: Literal["sqlite", "postgres"] = "sqlite"
    cluster: bool = False
    faults: dict[str, int] = field(default_factory=dict)
    """How many of each of FAULTS."""
    fault_gap: float = 3.0
    """Least seconds between two faults: the stream is slowed down to make room for them all."""
    timeout: float = 180.0
    """Seconds to wait for phase 1 to be handled, and for the last outputs after the stream."""

    def problems(self) -> list[str]:
        wrong = [f"unknown fault {name!r}" for name in self.faults if name not in FAULTS]
        if self.cluster and self.faults.get("broker-restart"):
            wrong.append("a cluster has node stops (--node-stops), not broker restarts")
        if not self.cluster and self.faults.get("node-stop"):
            wrong.append("node stops need --cluster")
        if self.store != "postgres" and (self.faults.get("pg-restart") or self.faults.get("pg-cut")):
            wrong.append("PostgreSQL faults need --store postgres")
        return wrong
