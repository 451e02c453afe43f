"""The real RabbitMQ and PostgreSQL: the local ones when they answer, testcontainers where a
Docker engine exists, and a clear failure (never a skip) otherwise. Plus fresh vhosts."""

import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

RABBITMQ_URL = os.environ.get("RENEWALS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get("RENEWALS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


class ServiceMissing(RuntimeError):
    """A service the caller needs is not there and cannot be started here."""


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
def rabbitmq_base_url() -> Iterator[str]:
    if answers(RABBITMQ_URL):
        yield RABBITMQ_URL
        return
    if docker_works():
        from testcontainers.rabbitmq import RabbitMqContainer

        with RabbitMqContainer("rabbitmq:3.13-management") as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(5672)
            yield f"amqp://guest:guest@{host}:{port}/"
        return
    raise ServiceMissing(f"no RabbitMQ at {RABBITMQ_URL} and no Docker engine for testcontainers")


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


def create_vhost(base_url: str, prefix: str) -> tuple[str, str]:
    """A fresh vhost made with rabbitmqctl on this host, and the URL that uses it."""
    if shutil.which("rabbitmqctl") is None:
        raise ServiceMissing("rabbitmqctl is needed to make a vhost on the local broker")
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    parts = urlsplit(base_url)
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    user = parts.username or "guest"
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, user, ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    return name, parts._replace(path="/" + name).geturl()


def delete_vhost(name: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], capture_output=True)


@contextmanager
def fresh_vhost(base_url: str, prefix: str) -> Iterator[str]:
    """A vhost for the length of the block; deleted afterwards."""
    name, url = create_vhost(base_url, prefix)
    try:
        yield url
    finally:
        delete_vhost(name)
