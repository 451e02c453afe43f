"""What one run is asked to do: the stream's seed and size, the deployment, the faults."""

from dataclasses import dataclass, field
from typing import Literal

FAULTS = ("kill", "sigterm", "broker-restart", "close-connection", "node-stop", "pg-restart", "pg-cut")
RABBITMQ = ("3.10", "4.0", "4.3")
"""The cluster's RabbitMQ: the host's 3.10, or 4.x nodes in the test matrix's Debian chroot."""


@dataclass(frozen=True)
class Options:
    seed: int = 1
    events: int = 20_000
    rate: float = 1000.0
    workers: int = 1
    store: Literal["sqlite", "postgres"] = "sqlite"
    cluster: bool = False
    rabbitmq: str = "3.10"
    """The RabbitMQ series of the cluster (RABBITMQ); a single node is always the host's 3.10."""
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
        if self.rabbitmq not in RABBITMQ:
            wrong.append(f"unknown RabbitMQ {self.rabbitmq!r}: choose one of {', '.join(RABBITMQ)}")
        elif self.rabbitmq != RABBITMQ[0] and not self.cluster:
            wrong.append(f"RabbitMQ {self.rabbitmq} is for --cluster; one node is the host's {RABBITMQ[0]}")
        if self.store != "postgres" and (self.faults.get("pg-restart") or self.faults.get("pg-cut")):
            wrong.append("PostgreSQL faults need --store postgres")
        return wrong
