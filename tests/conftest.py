"""Fixtures for the real services. Broker tests get a fresh vhost each."""

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from tests.services import drop_vhost, fresh_vhost, postgres_base_url, rabbitmq_base_url


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[str]:
    with rabbitmq_base_url() as url:
        yield url


@pytest.fixture
def amqp_url(rabbitmq: str) -> Iterator[str]:
    """A URL on a vhost of this test's own."""
    name, url = fresh_vhost(rabbitmq)
    yield url
    drop_vhost(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    with postgres_base_url() as url:
        yield url


@pytest.fixture
def postgres_url(postgres: str) -> Iterator[str]:
    """A URL whose search_path is a schema of this test's own."""
    schema = f"renewals_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in postgres else "?"
    yield f"{postgres}{separator}options=-csearch_path%3D{schema}"
    with psycopg.connect(postgres, autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")
