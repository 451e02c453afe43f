"""The throw-away PostgreSQL of `support` does what fault tests rely on (and prints how long it
took to start; run with -s to see it). It starts its own server on a free port, never the shared
one. The spare RabbitMQ cluster and TLS node are proven by the product's own tests that use
them (tests/e2e/test_cluster_and_tls.py), so the suite starts no cluster just to test it."""

import time

import psycopg
import pytest

from support.spare_postgres import spare_postgres


def started(what: str, since: float) -> None:
    print(f"\n{what} started in {time.monotonic() - since:.1f}s")


def test_spare_postgres_answers_restarts_and_cuts_connections() -> None:
    """The spare PostgreSQL takes its settings, comes back after a restart and a stop, and cut_connections breaks a live connection."""
    since = time.monotonic()
    with spare_postgres({"max_connections": 20}) as server:
        started("PostgreSQL", since)
        with psycopg.connect(server.url) as connection:
            assert connection.execute("SHOW max_connections").fetchone() == ("20",)
        server.restart(down_for=0.2)
        server.stop()
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(server.url, connect_timeout=2)
        server.start()
        with psycopg.connect(server.url, autocommit=True) as victim:
            assert victim.execute("SELECT 1").fetchone() == (1,)
            assert server.cut_connections("postgres") == 1
            with pytest.raises(psycopg.OperationalError):
                victim.execute("SELECT 1")
        with psycopg.connect(server.url) as connection:
            assert connection.execute("SELECT 1").fetchone() == (1,)
