"""The console's health strip and /api/health read the broker through one connection the
console keeps, with a short cache: polling them opens no connection per request, and a broker
that goes away and comes back is reported, then read again."""

import time
from pathlib import Path

import amqp

from support.amqp import connect
from support.console import VIEWER, basic, in_process
from support.polling import wait_until
from support.tcp_proxy import TcpProxy
from worker.console.health import FRESH_FOR
from worker.settings import Settings


def test_twenty_health_requests_and_strips_open_one_broker_connection(amqp_url: str, tmp_path: Path) -> None:
    """20 /api/health calls and 20 health strips, then more after the cache ran out: one connect through the proxy, and the queue's depth as it is now."""
    queue = Settings().queue
    setup = connect(amqp_url)
    channel = setup.channel()
    channel.queue_declare(queue, durable=True, auto_delete=False)
    try:
        with TcpProxy(amqp_url) as proxy:
            client, _ = in_process(tmp_path, [], amqp_url=proxy.url)
            for _ in range(20):
                api = client.get("/api/health", headers=basic(VIEWER)).json()
                strip = client.get("/health", headers=basic(VIEWER))
                assert api["broker_error"] is None and api["queue_depth"] == 0 and strip.status_code == 200
            channel.basic_publish(amqp.Message(b"{}"), exchange="", routing_key=queue)
            time.sleep(FRESH_FOR + 0.2)
            assert client.get("/api/health", headers=basic(VIEWER)).json()["queue_depth"] == 1
            assert proxy.accepted == 1
    finally:
        channel.queue_delete(queue)
        setup.close()


def test_a_broker_gone_and_back_is_reported_then_read_through_a_new_connection(
    amqp_url: str, tmp_path: Path
) -> None:
    """The proxy cut: the next read after the cache says the broker is unreachable; restored: it is read again, through a second connection."""
    with TcpProxy(amqp_url) as proxy:
        client, _ = in_process(tmp_path, [], amqp_url=proxy.url)
        assert client.get("/api/health", headers=basic(VIEWER)).json()["broker_error"] is None
        proxy.cut()
        wait_until(
            lambda: client.get("/api/health", headers=basic(VIEWER)).json()["broker_error"] is not None,
            timeout=FRESH_FOR + 10,
            what="the broker reported unreachable",
        )
        proxy.restore()
        wait_until(
            lambda: client.get("/api/health", headers=basic(VIEWER)).json()["broker_error"] is None,
            timeout=FRESH_FOR + 10,
            what="the broker read again",
        )
        assert proxy.accepted == 2
