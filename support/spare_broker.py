"""A second RabbitMQ node on this host, for tests that restart or starve the broker
without disturbing anything else that uses the main one."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from support.polling import wait_until
from support.services import ServiceMissing, free_port


@dataclass(frozen=True)
class SpareBroker:
    node: str
    url: str

    def ctl(self, *args: str) -> None:
        subprocess.run(
            ["rabbitmqctl", "-q", "-n", self.node, *args], check=True, capture_output=True, timeout=60
        )

    def restart_app(self, down_for: float = 1.0) -> None:
        self.ctl("stop_app")
        time.sleep(down_for)
        self.ctl("start_app")


def _listens(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@contextmanager
def spare_broker() -> Iterator[SpareBroker]:
    if shutil.which("rabbitmq-server") is None:
        raise ServiceMissing("rabbitmq-server is needed to start a spare node for broker-restart tests")
    port, dist_port = free_port(), free_port()
    node = f"renewals-spare-{os.getpid()}@localhost"
    folder = tempfile.mkdtemp(prefix="renewals-spare-")
    for sub in ("mnesia", "log"):
        os.makedirs(os.path.join(folder, sub))
    with open(os.path.join(folder, "rabbitmq.conf"), "w") as conf:
        conf.write(f"listeners.tcp.local = 127.0.0.1:{port}\nloopback_users = none\n")
    shutil.chown(folder, "rabbitmq", "rabbitmq")
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            shutil.chown(os.path.join(root, name), "rabbitmq", "rabbitmq")
    env = {
        **os.environ,
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_PORT": str(port),
        "RABBITMQ_DIST_PORT": str(dist_port),
        "RABBITMQ_CONFIG_FILE": os.path.join(folder, "rabbitmq.conf"),
        "RABBITMQ_MNESIA_BASE": os.path.join(folder, "mnesia"),
        "RABBITMQ_LOG_BASE": os.path.join(folder, "log"),
        "RABBITMQ_PID_FILE": os.path.join(folder, "rabbitmq.pid"),
    }
    subprocess.run(["rabbitmq-server", "-detached"], env=env, check=True, capture_output=True)
    broker = SpareBroker(node, f"amqp://guest:guest@127.0.0.1:{port}/")
    try:
        wait_until(lambda: _listens(port), f"the spare RabbitMQ node to listen on {port}", 90, every=0.2)
        yield broker
    finally:
        subprocess.run(["rabbitmqctl", "-q", "-n", node, "stop"], capture_output=True, timeout=60)
        if not os.environ.get("RENEWALS_KEEP_SPARE"):
            shutil.rmtree(folder, ignore_errors=True)
