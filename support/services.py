"""The real RabbitMQ and PostgreSQL: the local ones when they answer, testcontainers where a
Docker engine exists, and a clear failure (never a skip) otherwise. Plus fresh vhosts.

RabbitMQ comes in the versions users run (`BROKERS`): the host's 3.10 on 5672, and 4.0 and 4.3
in Debian chroots that `support/brokers/rabbitmq4.sh` builds once per machine and starts on
demand. `RENEWALS_TEST_BROKERS` (say `3.10` or `4.0,4.3`) narrows the matrix.
"""

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

RABBITMQ_URL = os.environ.get("RENEWALS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get("RENEWALS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class ServiceMissing(RuntimeError):
    """A service the caller needs is not there and cannot be started here."""


CHROOT_BROKERS = Path(__file__).resolve().parent / "brokers" / "rabbitmq4.sh"


@dataclass(frozen=True)
class BrokerUnderTest:
    """One RabbitMQ of the matrix: its version, the URL of its default vhost, and the
    rabbitmqctl that manages it (the host's, or the one inside the node's chroot)."""

    version: str
    url: str
    ctl: tuple[str, ...]

    def __str__(self) -> str:
        return f"RabbitMQ {self.version}"

    def run_ctl(self, *args: str, check: bool = True) -> str:
        done = subprocess.run([*self.ctl, "-q", *args], capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise ServiceMissing(
                f"rabbitmqctl {' '.join(args)} on {self}: {done.stdout}{done.stderr}".strip()
            )
        return done.stdout

    def ensure_running(self) -> None:
        """The host's broker must already answer; a chroot node is built (once) and started."""
        if answers(self.url):
            return
        if self.ctl[0] != str(CHROOT_BROKERS):
            raise ServiceMissing(f"no {self} at {self.url}")
        for step in ("setup", "start"):
            done = subprocess.run(
                [str(CHROOT_BROKERS), step, self.version], capture_output=True, text=True, timeout=1200
            )
            if done.returncode != 0:
                tail = "\n".join((done.stdout + done.stderr).splitlines()[-10:])
                raise ServiceMissing(f"could not {step} {self} with {CHROOT_BROKERS.name}:\n{tail}")

    @contextmanager
    def vhost(self, prefix: str) -> Iterator[str]:
        """A fresh vhost for the length of the block, and the URL that uses it."""
        name, url = create_vhost(self.url, prefix, ctl=self.ctl)
        try:
            yield url
        finally:
            delete_vhost(name, ctl=self.ctl)


BROKERS = {
    "3.10": BrokerUnderTest("3.10", RABBITMQ_URL, ("rabbitmqctl",)),
    "4.0": BrokerUnderTest("4.0", "amqp://guest:guest@127.0.0.1:5690/", (str(CHROOT_BROKERS), "ctl", "4.0")),
    "4.3": BrokerUnderTest("4.3", "amqp://guest:guest@127.0.0.1:5691/", (str(CHROOT_BROKERS), "ctl", "4.3")),
}
"""The supported RabbitMQ series, each as the tests reach it."""


def rabbitmqctl_for(url: str) -> tuple[str, ...]:
    """The rabbitmqctl that manages the broker of the matrix at `url` (by its port)."""
    port = urlsplit(url).port or 5672
    for broker in BROKERS.values():
        if (urlsplit(broker.url).port or 5672) == port:
            return broker.ctl
    raise ServiceMissing(f"no broker of the matrix listens at {url}")


def brokers_under_test() -> list[BrokerUnderTest]:
    """The matrix this run covers: every supported series unless RENEWALS_TEST_BROKERS narrows it."""
    chosen = os.environ.get("RENEWALS_TEST_BROKERS", ",".join(BROKERS))
    versions = [v.strip() for v in chosen.split(",") if v.strip()]
    unknown = [v for v in versions if v not in BROKERS]
    if unknown or not versions:
        raise ValueError(f"RENEWALS_TEST_BROKERS={chosen!r}: choose among {', '.join(BROKERS)}")
    return [BROKERS[v] for v in versions]


def answers(url: str, default_port: int = 5672) -> bool:
    """True if something listens at the URL's host and port."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def docker_works() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=20).returncode == 0


@contextmanager
def postgres_base_url() -> Iterator[str]:
    if answers(POSTGRES_URL, 5432):
        yield POSTGRES_URL
        return
    if docker_works():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            yield container.get_connection_url()
        return
    raise ServiceMissing(f"no PostgreSQL at {POSTGRES_URL} and no Docker engine for testcontainers")


def create_vhost(base_url: str, prefix: str, ctl: tuple[str, ...] = ("rabbitmqctl",)) -> tuple[str, str]:
    """A fresh vhost made with `ctl` (the host's rabbitmqctl unless told), and the URL that uses it."""
    if shutil.which(ctl[0]) is None:
        raise ServiceMissing(f"{ctl[0]} is needed to make a vhost on the broker")
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    parts = urlsplit(base_url)
    subprocess.run([*ctl, "-q", "add_vhost", name], check=True, capture_output=True)
    user = parts.username or "guest"
    subprocess.run(
        [*ctl, "-q", "set_permissions", "-p", name, user, ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    return name, parts._replace(path="/" + name).geturl()


def delete_vhost(name: str, ctl: tuple[str, ...] = ("rabbitmqctl",)) -> None:
    subprocess.run([*ctl, "-q", "delete_vhost", name], capture_output=True)


@contextmanager
def fresh_vhost(base_url: str, prefix: str) -> Iterator[str]:
    """A vhost on the host's broker for the length of the block; deleted afterwards."""
    name, url = create_vhost(base_url, prefix)
    try:
        yield url
    finally:
        delete_vhost(name)
