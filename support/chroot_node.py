"""RabbitMQ 4.x nodes of our own, in the Debian chroot of the matrix's node of that version
(support/brokers/rabbitmq4.sh builds it; the host's glibc is too old for 4.x's Erlang).

Each node is a `RabbitNode` with its own name, AMQP and distribution ports (free ones, never the
matrix's 5690/5691 and 25690/25691 nor the host broker's), data, log, PID and config files in a
folder under the chroot's /tmp. It runs, and so does its CLI, as the chroot's `rabbitmq` user
through runuser, so every node of the chroot and every `rabbitmqctl` share that user's Erlang
cookie. The chroot's /etc/rabbitmq/rabbitmq-env.conf names the matrix's node and its ports, so
each node reads an env file of its own instead, which keeps Erlang distribution on loopback.
"""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from support.rabbitmq_node import RabbitNode, node_names
from support.services import BROKERS, CHROOT_BROKERS, ServiceMissing
from support.spare_broker import SpareCluster, booted, clustered

LOOPBACK_ONLY = """\
# This node's own (support/chroot_node.py): Erlang distribution and epmd on loopback only.
ERL_EPMD_ADDRESS=127.0.0.1
export ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1}"
"""


@dataclass(frozen=True)
class ChrootNode(RabbitNode):
    """A spare node whose files live under `root`, a chroot, where the node names them from /."""

    root: Path

    @classmethod
    def prepare_in(cls, root: Path, name: str, parent: Path) -> "ChrootNode":
        """Write the node's files into parent/<short name>/; `parent` lies inside `root`."""
        node = RabbitNode.prepare(name, parent)
        chrooted = cls(node.name, node.port, node.folder, node.dist_port, root)
        chrooted.env_file.write_text(LOOPBACK_ONLY)
        return chrooted

    @property
    def env_file(self) -> Path:
        return self.folder / "rabbitmq-env.conf"

    def seen(self, path: Path) -> str:
        return "/" + str(path.relative_to(self.root))

    def command(self, program: str, *args: str) -> list[str]:
        return [
            "chroot",
            str(self.root),
            "/usr/sbin/runuser",
            "-u",
            "rabbitmq",
            "--",
            "env",
            "HOME=/var/lib/rabbitmq",
            f"RABBITMQ_CONF_ENV_FILE={self.seen(self.env_file)}",
            f"/usr/lib/rabbitmq/bin/{program}",
            *args,
        ]


def chroot_of(version: str) -> Path:
    """The chroot of RabbitMQ `version`, built, its /proc mounted and its own node running (the
    matrix's way: `BrokerUnderTest.ensure_running`, which sets up and starts it if need be)."""
    if version not in BROKERS or BROKERS[version].ctl[0] != str(CHROOT_BROKERS):
        chrooted = [v for v, broker in BROKERS.items() if broker.ctl[0] == str(CHROOT_BROKERS)]
        raise ValueError(f"RabbitMQ {version!r} has no chroot: choose one of {', '.join(chrooted)}")
    BROKERS[version].ensure_running()
    done = subprocess.run(
        [str(CHROOT_BROKERS), "root", version], capture_output=True, text=True, timeout=30, check=True
    )
    return Path(done.stdout.strip())


@contextmanager
def _folder_in(root: Path) -> Iterator[Path]:
    """A fresh folder under the chroot's /tmp; removed at the end unless RENEWALS_KEEP_SPARE is set."""
    folder = Path(tempfile.mkdtemp(prefix="renewals-cluster-", dir=root / "tmp"))
    try:
        yield folder
    finally:
        if not os.environ.get("RENEWALS_KEEP_SPARE"):
            shutil.rmtree(folder, ignore_errors=True)


def _give_to_rabbitmq(root: Path, folder: Path) -> None:
    """`folder`, inside the chroot `root`, to its `rabbitmq` user (its uid is the chroot's own)."""
    subprocess.run(
        ["chroot", str(root), "chown", "-R", "rabbitmq:rabbitmq", "/" + str(folder.relative_to(root))],
        check=True,
        capture_output=True,
        timeout=30,
    )


@contextmanager
def chroot_cluster(version: str = "4.3", nodes: int = 3) -> Iterator[SpareCluster]:
    """`nodes` nodes of RabbitMQ `version` in its chroot, joined into one cluster (about 30 s for
    three on 4.3); halted and removed at the end. The matrix's own node there is left alone."""
    root = chroot_of(version)
    if shutil.which("chroot") is None or not (root / "usr/sbin/runuser").exists():
        raise ServiceMissing(f"chroot, and runuser in {root}, are needed to start RabbitMQ {version} nodes")
    with _folder_in(root) as folder:
        started = [ChrootNode.prepare_in(root, name, folder) for name in node_names(nodes)]
        _give_to_rabbitmq(root, folder)
        with booted(started):
            yield clustered(started)
