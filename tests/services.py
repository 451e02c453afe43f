"""The real RabbitMQ and PostgreSQL the tests need: the local ones when they answer,
testcontainers where a Docker engine exists, and a failure (never a skip) otherwise."""

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest

from bench.broker import create_vhost, delete_vhost

RABBITMQ_URL = os.environ.get("RENEWALS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")
POSTGRES_URL = os.environ.get("RENEWALS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), timeout=2):
            return True
    except OSError:
        return False


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
    pytest.fail(f"no RabbitMQ at {RABBITMQ_URL} and no Docker engine for testcontainers", pytrace=False)


@contextmanager
def postgres_base_url() -> Iterator[str]:
    if answers(POSTGRES_URL):
        yield POSTGRES_URL
        return
    if docker_works():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16", driver=None) as container:
            yield container.get_connection_url()
        return
    pytest.fail(f"no PostgreSQL at {POSTGRES_URL} and no Docker engine for testcontainers", pytrace=False)


def fresh_vhost(base_url: str) -> tuple[str, str]:
    """A new vhost for one test (via rabbitmqctl on this host), and the URL that uses it."""
    if shutil.which("rabbitmqctl") is None:
        pytest.fail("rabbitmqctl is needed to create a test vhost on the local broker", pytrace=False)
    return create_vhost(base_url, prefix="renewals-test")


drop_vhost = delete_vhost
