"""Fixtures for the real services. Broker tests get a fresh vhost each, store tests a fresh
PostgreSQL schema each; a missing service fails the test, never skips it."""

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from support.services import ServiceMissing, create_vhost, delete_vhost, postgres_base_url, rabbitmq_base_url


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[str]:
    try:
        with rabbitmq_base_url() as url:
            yield url
    except ServiceMissing as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture
def amqp_url(rabbitmq: str) -> Iterator[str]:
    """A URL on a vhost of this test's own."""
    try:
        name, url = create_vhost(rabbitmq, prefix="renewals-test")
    except ServiceMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    yield url
    delete_vhost(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    try:
        with postgres_base_url() as url:
            yield url
    except ServiceMissing as exc:
        pytest.fail(str(exc), pytrace=False)


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
