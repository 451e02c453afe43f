"""The throw-away servers of `support` do what fault tests rely on (and print how long each took
to start; run with -s to see it). Each starts its own processes on free ports, never the
shared RabbitMQ or PostgreSQL."""

import ssl
import time

import amqp
import kombu
import psycopg
import pytest

from support.spare_broker import spare_cluster, spare_tls_broker
from support.spare_postgres import spare_postgres


def started(what: str, since: float) -> None:
    print(f"\n{what} started in {time.monotonic() - since:.1f}s")


def connected(url: str, **connection: object) -> kombu.Connection:
    """A kombu connection made in one attempt (`connect()` would retry after 2 s, `default_channel` forever)."""
    conn = kombu.Connection(url, **connection)
    try:
        conn.ensure_connection(max_retries=0)
    except Exception:
        conn.release()
        raise
    return conn


def put(url: str, queue: str, body: bytes, **connection: object) -> None:
    """Declare `queue` as a quorum queue and publish `body` to it, with a publisher confirm."""
    with connected(url, **connection) as conn:
        channel = conn.default_channel
        channel.queue_declare(queue, durable=True, auto_delete=False, arguments={"x-queue-type": "quorum"})
        channel.confirm_select()
        channel.basic_publish(amqp.Message(body, delivery_mode=2), exchange="", routing_key=queue)


def get(url: str, queue: str, **connection: object) -> bytes | None:
    """The next message's body on `queue` (acknowledged), or None if it is empty."""
    with connected(url, **connection) as conn:
        message = conn.default_channel.basic_get(queue, no_ack=True)
        return None if message is None else bytes(message.body)


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


def test_spare_cluster_keeps_a_quorum_queue_available_while_a_node_is_down() -> None:
    """Three nodes run as one cluster; a quorum queue declared via node 1 serves node 3, and node 2 while node 1 is stopped."""
    since = time.monotonic()
    with spare_cluster(3) as cluster:
        started("3-node RabbitMQ cluster", since)
        assert sorted(cluster.running_nodes()) == sorted(cluster.nodes)
        assert cluster.url_list == ";".join(cluster.urls)
        put(cluster.urls[0], "spare.quorum", b"before")
        assert get(cluster.urls[2], "spare.quorum") == b"before"
        put(cluster.urls[2], "spare.quorum", b"kept")

        cluster.stop_node(0)
        assert sorted(cluster.running_nodes()) == sorted(cluster.nodes[1:])
        assert get(cluster.urls[1], "spare.quorum") == b"kept"
        put(cluster.urls[1], "spare.quorum", b"while down")
        assert get(cluster.urls[1], "spare.quorum") == b"while down"

        cluster.start_node(0)
        assert sorted(cluster.running_nodes()) == sorted(cluster.nodes)
        put(cluster.urls[1], "spare.quorum", b"after")
        assert get(cluster.urls[0], "spare.quorum") == b"after"


def test_spare_tls_broker_wants_our_ca_and_client_certificate() -> None:
    """The TLS node serves a kombu client holding the CA and client certificate, and refuses one without either."""
    since = time.monotonic()
    with spare_tls_broker() as broker:
        started("TLS RabbitMQ node", since)
        assert broker.url.startswith("amqps://guest:guest@localhost:")
        put(broker.url, "spare.tls", b"over tls", ssl=broker.ssl_options())
        assert get(broker.url, "spare.tls", ssl=broker.ssl_options()) == b"over tls"
        assert get(broker.tcp_url, "spare.tls") is None
        without_ca = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": "localhost"}
        with pytest.raises(kombu.exceptions.OperationalError) as refused:
            connected(broker.url, ssl=without_ca)
        assert isinstance(refused.value.__cause__, ssl.SSLCertVerificationError)
        with pytest.raises(kombu.exceptions.OperationalError, match="CERTIFICATE_REQUIRED"):
            connected(broker.url, ssl=broker.ssl_options(client_cert=False))
