"""What the runner deploys and disturbs: a spare RabbitMQ node or 3-node cluster, a spare
PostgreSQL or a SQLite file, N worker processes; and every fault, logged with its time.

Every fault leaves the deployment as it found it (a killed worker is restarted, a stopped
node started), so faults can come in any order.
"""

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from random import Random

from support.chaos.billing import BILLING
from support.chaos.options import RABBITMQ
from support.chroot_node import chroot_cluster
from support.client import NAMES
from support.rabbitmq_node import NodeFailed
from support.spare_broker import SpareBroker, SpareCluster, spare_broker, spare_cluster
from support.spare_postgres import SparePostgres, spare_postgres
from support.worker_process import WorkerProcess

WORKER_ENV = {
    "RENEWALS_RETRY_DELAYS": "[0.2, 0.5, 1]",
    "RENEWALS_OUTBOX_GRACE": "2",
    "RENEWALS_OUTBOX_SWEEP_INTERVAL": "1",
    "RENEWALS_RECONNECT_MAX_DELAY": "3",
    "RENEWALS_HEARTBEAT": "10",
}
"""Short retry tiers and outbox grace, so a run's stragglers arrive within seconds."""


@dataclass(frozen=True)
class Incident:
    """A fault injected (or a worker exit nobody asked for), `at` seconds into the run."""

    at: float
    fault: str
    detail: str
    failed: bool = False


class Deployment:
    def __init__(
        self,
        folder: Path,
        rng: Random,
        broker: SpareBroker | None,
        cluster: SpareCluster | None,
        postgres: SparePostgres | None,
    ) -> None:
        self.folder, self.rng = folder, rng
        self.broker, self.cluster, self.postgres = broker, cluster, postgres
        self.urls = list(cluster.urls) if cluster else [broker.url] if broker else []
        self.url_list = ";".join(self.urls)
        self.store_url = postgres.url if postgres else f"sqlite:///{folder / 'renewals.db'}"
        self.workers: list[WorkerProcess] = []
        self.every_worker: list[WorkerProcess] = []
        self.incidents: list[Incident] = []
        self.started = time.monotonic()
        self._began: float | None = None

    # -- workers ---------------------------------------------------------------------------

    def start_workers(self, count: int) -> None:
        self.workers = [self._worker(n) for n in range(count)]
        self.workers[0].start()  # declares the topology before billing publishes
        for worker in self.workers[1:]:
            worker.start(wait=False)

    def _worker(self, slot: int) -> WorkerProcess:
        worker = WorkerProcess(
            self.url_list, self.folder, store_url=self.store_url, name=f"worker{slot}", env=WORKER_ENV
        )
        self.every_worker.append(worker)
        return worker

    def _restart(self, slot: int) -> WorkerProcess:
        self.workers[slot] = self._worker(slot).start(wait=False)
        return self.workers[slot]

    def check_workers(self) -> None:
        """A worker that exited by itself is an incident (and is started again)."""
        for slot, worker in enumerate(self.workers):
            if worker.process is not None and worker.process.poll() is not None:
                code = worker.process.returncode
                self.log("worker exited", f"worker{slot} exited by itself with {code}", failed=True)
                self._restart(slot)

    def stop_workers(self) -> list[int]:
        """SIGTERM every worker, once (a second one could land after Python restored the default
        handler on its way out); their exit codes (-9: killed after 40 s)."""
        running = [w.process for w in self.workers if w.process is not None and w.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        codes = []
        for worker in self.workers:
            assert worker.process is not None
            try:
                codes.append(worker.process.wait(40))
            except subprocess.TimeoutExpired:
                worker.kill()
                codes.append(-9)
        return codes

    # -- faults ----------------------------------------------------------------------------

    def inject(self, fault: str) -> None:
        """Inject `fault`; its incident is logged with the time it began."""
        self.check_workers()
        self._began = time.monotonic()
        try:
            getattr(self, "_" + fault.replace("-", "_"))()
        finally:
            self._began = None

    def _kill(self) -> None:
        slot = self.rng.randrange(len(self.workers))
        pid = self.workers[slot].pid
        self.workers[slot].kill()
        self._restart(slot)
        self.log("kill", f"kill -9 worker{slot} (pid {pid}), restarted")

    def _sigterm(self) -> None:
        """A graceful stop of a worker that is consuming (so it has a batch to finish)."""
        slot = self.rng.randrange(len(self.workers))
        with suppress(AssertionError):  # still starting after 30 s: stop it all the same
            self.workers[slot].wait_for("worker.consuming", timeout=30)
        began = time.monotonic()
        code = self.workers[slot].stop(signal.SIGTERM, timeout=40)
        took = time.monotonic() - began
        self._restart(slot)
        self.log("sigterm", f"worker{slot} exited {code} after {took:.1f}s, restarted", failed=code != 0)

    def _broker_restart(self) -> None:
        assert self.broker is not None, "a broker restart needs the single node"
        began = time.monotonic()
        self.broker.restart_app(down_for=1.0)
        self.log("broker-restart", f"stop_app, start_app: down {time.monotonic() - began:.1f}s")

    def _close_connection(self) -> None:
        # The default (tab-separated) output: close_connection wants the pid written as listed there.
        listed = self.ctl("list_connections", "pid", "name", "client_properties", "--no-table-headers")
        workers = {
            line.split("\t")[0]: line.split("\t")[1]
            for line in listed.splitlines()
            if "py-amqp" in line and BILLING not in line
        }
        if not workers:
            self.log("close-connection", "no worker connection to close")
            return
        pid = self.rng.choice(sorted(workers))
        self.ctl("close_connection", pid, "closed by the chaos runner")
        self.log("close-connection", f"closed {workers[pid]} ({len(workers)} worker connections)")

    def _node_stop(self) -> None:
        assert self.cluster is not None, "a node stop needs the cluster"
        victim = self._leader_of(NAMES.queue)
        began = time.monotonic()
        self.cluster.stop_node(victim)
        time.sleep(2.0)
        self.cluster.start_node(victim)
        node = self.cluster.nodes[victim]
        self.log("node-stop", f"{node} (leader of {NAMES.queue}) down {time.monotonic() - began:.1f}s")

    def _pg_restart(self) -> None:
        assert self.postgres is not None, "a PostgreSQL restart needs the spare PostgreSQL"
        began = time.monotonic()
        self.postgres.restart(down_for=1.0)
        self.log("pg-restart", f"pg_ctl stop -m fast, start: down {time.monotonic() - began:.1f}s")

    def _pg_cut(self) -> None:
        assert self.postgres is not None, "cutting connections needs the spare PostgreSQL"
        cut = self.postgres.cut_connections()
        self.log("pg-cut", f"pg_terminate_backend on {cut} connections")

    # -- the broker --------------------------------------------------------------------------

    def ctl(self, *args: str) -> str:
        """rabbitmqctl on the first node that answers."""
        if self.broker is not None:
            return self.broker.ctl(*args)
        assert self.cluster is not None
        failure: NodeFailed | None = None
        for index in range(len(self.cluster.nodes)):
            try:
                return self.cluster.ctl(index, *args)
            except NodeFailed as exc:
                failure = exc
        raise failure or NodeFailed("no node")

    def rabbitmq_version(self) -> str:
        """The RabbitMQ version the (first answering) node runs, as it says: 4.3.6, say."""
        return self.ctl("eval", "rabbit_misc:version().").strip().strip('"')

    def queue_depths(self) -> dict[str, int]:
        """Messages in each queue, ready and unacknowledged together."""
        listed = json.loads(self.ctl("list_queues", "name", "messages", "--formatter", "json"))
        return {row["name"]: int(row["messages"]) for row in listed}

    def _leader_of(self, queue: str) -> int:
        assert self.cluster is not None
        listed = json.loads(self.ctl("list_queues", "name", "leader", "--formatter", "json"))
        leader = next(row["leader"] for row in listed if row["name"] == queue)
        return self.cluster.nodes.index(leader)

    def log(self, fault: str, detail: str, failed: bool = False) -> None:
        at = self._began if self._began is not None else time.monotonic()
        incident = Incident(round(at - self.started, 1), fault, detail, failed)
        self.incidents.append(incident)
        print(f"  {incident.at:7.1f}s  {fault:<16} {detail}", flush=True)


@contextmanager
def deployed(
    folder: Path, rng: Random, *, cluster: bool, postgres: bool, rabbitmq: str = RABBITMQ[0]
) -> Iterator[Deployment]:
    """The spare servers for one run; stopped and removed at the end. A `rabbitmq` 4.x cluster
    runs in the test matrix's chroot of that version; 3.10 is the host's."""
    with ExitStack() as stack:
        three = spare_cluster(3) if rabbitmq == RABBITMQ[0] else chroot_cluster(rabbitmq, 3)
        nodes = stack.enter_context(three) if cluster else None
        node = None if cluster else stack.enter_context(spare_broker())
        database = stack.enter_context(spare_postgres()) if postgres else None
        deployment = Deployment(folder, rng, node, nodes, database)
        try:
            yield deployment
        finally:
            for worker in deployment.workers:
                worker.kill()
