"""Fixtures for the real services. Broker tests get a fresh vhost each, store tests a fresh
PostgreSQL schema each; a missing service fails the test, never skips it.

Every test that uses the broker runs once per supported RabbitMQ series (3.10, 4.0, 4.3):
its id names the version, `test_x[rabbitmq-4.3]`."""

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from support.services import (
    BrokerUnderTest,
    ServiceMissing,
    brokers_under_test,
    postgres_base_url,
)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by the `slow` marks added here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test marked `any_broker` proves something the broker's version has no part in (a bad
    setting, the README's commands, the console's pages): it runs on the first broker of the
    matrix only, and its other versions are deselected (reported as such, never as skipped).
    `broker_versions("3.10")` keeps a test to the versions named: what it sends only they take.
    `other_brokers_slow`: the worker's own logic, which a broker's version is unlikely to touch;
    it runs on the first broker by default and on the others with the slow proofs (`-m slow`)."""
    first = brokers_under_test()[0].version
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        callspec = getattr(item, "callspec", None)
        broker = callspec.params.get("rabbitmq") if callspec is not None else None
        only = item.get_closest_marker("broker_versions")
        if broker is not None and broker.version != first and item.get_closest_marker("other_brokers_slow"):
            item.add_marker(pytest.mark.slow)
        if broker is None:
            keep.append(item)
        elif (item.get_closest_marker("any_broker") and broker.version != first) or (
            only is not None and broker.version not in only.args
        ):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


@pytest.fixture(scope="session", params=brokers_under_test(), ids=lambda broker: f"rabbitmq-{broker.version}")
def rabbitmq(request: pytest.FixtureRequest) -> BrokerUnderTest:
    """One RabbitMQ of the matrix, running (a 4.x node is built and started if need be)."""
    broker: BrokerUnderTest = request.param
    try:
        broker.ensure_running()
    except ServiceMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    return broker


@pytest.fixture
def amqp_url(rabbitmq: BrokerUnderTest) -> Iterator[str]:
    """A URL on a vhost of this test's own."""
    try:
        with rabbitmq.vhost("renewals-test") as url:
            yield url
    except ServiceMissing as exc:
        pytest.fail(str(exc), pytrace=False)


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
