"""Spare RabbitMQ servers on this host for fault tests: one node, a three-node cluster, a node
with a TLS listener. Each starts on free ports in a folder of its own, and is stopped and
removed at the end of its block (even on error); none touches the shared broker on 5672."""

import json
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from operator import methodcaller

from support.certificates import Certificates, make_certificates
from support.owned_folder import give_to, owned_folder
from support.rabbitmq_node import RabbitNode, node_names
from support.services import ServiceMissing, free_port


class SpareBroker:
    """One spare node: `url` reaches it (plain AMQP at 127.0.0.1), `node` is its Erlang name."""

    def __init__(self, node: RabbitNode) -> None:
        self._node = node
        self.node = node.name
        self.url = node.url

    def ctl(self, *args: str) -> str:
        """`rabbitmqctl -n NODE ARGS...` against this node; its output."""
        return self._node.ctl(*args)

    def restart_app(self, down_for: float = 1.0) -> None:
        """Stop the RabbitMQ application (every connection drops), wait, start it again."""
        self.ctl("stop_app")
        time.sleep(down_for)
        self.ctl("start_app")


class SpareTlsBroker(SpareBroker):
    """`url` is amqps://guest:guest@localhost:PORT/ on a listener whose certificate our CA
    (`ca_file`) signed and which verifies clients against it; `tcp_url` is the plain listener."""

    def __init__(self, node: RabbitNode, ssl_port: int, files: Certificates) -> None:
        super().__init__(node)
        self.tcp_url = node.url
        self.url = f"amqps://guest:guest@localhost:{ssl_port}/"
        self.ca_file, self.client_cert, self.client_key = files.ca_file, files.client_cert, files.client_key


class SpareCluster:
    """Nodes joined into one cluster (quorum queues get a member on each). Node `i` is
    `nodes[i]` (its Erlang name) and `urls[i]`, counted from 0: node 1 of the docs is index 0."""

    def __init__(self, nodes: Sequence[RabbitNode]) -> None:
        self._nodes = list(nodes)
        self._app_only: set[int] = set()
        self.nodes = tuple(node.name for node in nodes)
        self.urls = tuple(node.url for node in nodes)
        self.url_list = ";".join(self.urls)
        """Every node's URL in the failover form RENEWALS_AMQP_URL takes (`;` between nodes)."""

    def ctl(self, i: int, *args: str) -> str:
        """`rabbitmqctl -n NODE ARGS...` against node `i`; its output."""
        return self._nodes[i].ctl(*args)

    def stop_node(self, i: int, app_only: bool = False) -> None:
        """Take node `i` out: by default its whole VM stops (`rabbitmqctl stop`: connections are
        closed, the node leaves Erlang distribution, like a lost machine); `app_only` stops just
        the RabbitMQ application (`stop_app`, quicker). Both leave a 3-node cluster's quorum
        queues available through the other two."""
        if app_only:
            self._nodes[i].ctl("stop_app")
            self._app_only.add(i)
        else:
            self._nodes[i].stop()

    def start_node(self, i: int) -> None:
        """Bring node `i` back the way it went, and wait until it runs (and has rejoined)."""
        if i in self._app_only:
            self._nodes[i].ctl("start_app")
            self._app_only.discard(i)
        else:
            self._nodes[i].start()

    def running_nodes(self) -> list[str]:
        """The cluster's running nodes, as the first node still answering sees them."""
        for node in self._nodes:
            try:
                status = json.loads(node.ctl("cluster_status", "--formatter", "json"))
                return list(status["running_nodes"])
            except (RuntimeError, ValueError):
                continue
        return []


def at_once(action: Callable[[RabbitNode], object], nodes: Sequence[RabbitNode]) -> None:
    """`action` on every node at once (each node's CLI calls start an Erlang VM: slow in series)."""
    with ThreadPoolExecutor(max(1, len(nodes))) as pool:
        list(pool.map(action, nodes))


@contextmanager
def booted(nodes: Sequence[RabbitNode]) -> Iterator[None]:
    """The prepared `nodes`, launched and awaited in parallel; halted at the end, pass or fail."""
    try:
        # methodcaller: a node of a subclass (support/chroot_node.py) launches its own way.
        at_once(methodcaller("launch"), nodes)
        at_once(methodcaller("wait"), nodes)
        yield
    finally:
        at_once(methodcaller("halt"), nodes)


def clustered(nodes: Sequence[RabbitNode]) -> SpareCluster:
    """Running `nodes` joined into one cluster: nodes 2..n `stop_app` in parallel, then each in
    turn `join_cluster` node 1 and `start_app`. (Two nodes joining at once can kill Mnesia's
    monitor on one of them, on 3.10: `start_app` then fails; RabbitMQ's own advice is one at a
    time.)"""
    first = nodes[0].name
    at_once(methodcaller("ctl", "stop_app"), nodes[1:])
    for node in nodes[1:]:
        node.ctl("join_cluster", first)
        node.ctl("start_app")
    return SpareCluster(nodes)


@contextmanager
def _running(count: int, prefix: str, config: str = "") -> Iterator[list[RabbitNode]]:
    """`count` fresh nodes, booted in parallel; halted and their folder removed at the end."""
    if shutil.which("rabbitmq-server") is None or shutil.which("rabbitmqctl") is None:
        raise ServiceMissing("rabbitmq-server and rabbitmqctl are needed to start spare RabbitMQ nodes")
    with owned_folder(prefix, "rabbitmq") as folder:
        nodes = [RabbitNode.prepare(name, folder, config) for name in node_names(count)]
        give_to("rabbitmq", folder)
        with booted(nodes):
            yield nodes


@contextmanager
def spare_broker() -> Iterator[SpareBroker]:
    """One node, on plain AMQP at 127.0.0.1 (about 3 s to start)."""
    with _running(1, "renewals-spare-") as (node,):
        yield SpareBroker(node)


@contextmanager
def spare_cluster(nodes: int = 3) -> Iterator[SpareCluster]:
    """`nodes` nodes joined into one cluster (about 15 s for three): all boot in parallel, then
    nodes 2..n join node 1 one at a time (`clustered`)."""
    with _running(nodes, "renewals-cluster-") as started:
        yield clustered(started)


@contextmanager
def spare_tls_broker(require_client_cert: bool = True) -> Iterator[SpareTlsBroker]:
    """One node with a TLS listener besides its plain one, and a CA, server certificate
    (localhost, 127.0.0.1) and client certificate made for it (about 3 s). The listener verifies
    client certificates against the CA and, with `require_client_cert`, refuses a client that
    has none; the user is still `guest` by password (EXTERNAL would need a plugin)."""
    ssl_port = free_port()
    with owned_folder("renewals-pki-", "rabbitmq") as pki:
        files = make_certificates(pki)
        give_to("rabbitmq", pki)
        config = (
            f"listeners.ssl.default = 127.0.0.1:{ssl_port}\n"
            f"ssl_options.cacertfile = {files.ca_file}\n"
            f"ssl_options.certfile = {files.server_cert}\n"
            f"ssl_options.keyfile = {files.server_key}\n"
            "ssl_options.verify = verify_peer\n"
            f"ssl_options.fail_if_no_peer_cert = {str(require_client_cert).lower()}\n"
        )
        with _running(1, "renewals-tls-", config) as (node,):
            yield SpareTlsBroker(node, ssl_port, files)
