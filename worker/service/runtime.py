"""The worker's lifecycle: connect, run a session, and reconnect with backoff when the
broker goes away, until asked to stop."""

import socket
import threading
from typing import Any

import kombu
from amqp.exceptions import ConnectionError as AmqpConnectionError
from amqp.exceptions import RecoverableConnectionError

from worker.redaction import masked
from worker.service.failures import PublishFailed
from worker.service.processing import BatchProcessor
from worker.service.session import Session, StoppedDuringOutage
from worker.settings import Settings

_BROKER_TROUBLE = (OSError, PublishFailed, AmqpConnectionError, RecoverableConnectionError)


class Worker:
    """Runs until `stop` is set; reconnects with backoff whenever the broker goes away."""

    def __init__(self, settings: Settings, processor: BatchProcessor, log: Any) -> None:
        self._settings = settings
        self._processor = processor
        self._log = log

    def run(self, stop: threading.Event) -> None:
        delay = 0.5

        def consuming() -> None:
            nonlocal delay
            delay = 0.5

        while not stop.is_set():
            try:
                with self._connect() as consuming_connection, self._connect() as publishing_connection:
                    session = Session(
                        self._settings,
                        self._processor,
                        self._log,
                        consuming_connection,
                        publishing_connection,
                    )
                    session.run(stop, on_consuming=consuming)
                return
            except StoppedDuringOutage:
                self._log.warning("worker.stopped", during="store outage", unacknowledged="redelivered")
                return
            except _BROKER_TROUBLE as exc:
                self._log.warning(
                    "broker.connection_lost",
                    error=f"{type(exc).__name__}: {exc}",
                    retry_in_s=round(delay, 2),
                    broker=masked(self._settings.amqp_url),
                    exc_info=self._settings.log_level == "debug",
                )
                stop.wait(delay)
                delay = min(delay * 2, self._settings.reconnect_max_delay)

    def _connect(self) -> kombu.Connection:
        connection = kombu.Connection(
            self._settings.amqp_url,
            heartbeat=self._settings.heartbeat,
            connect_timeout=5,
            # py-amqp sets TCP_USER_TIMEOUT to 1 s, which kills a connection the broker has
            # blocked (memory or disk alarm) after one second; heartbeats find dead peers instead.
            transport_options={"socket_settings": {socket.TCP_USER_TIMEOUT: 0}},
        )
        # One attempt: the backoff between attempts is ours (logged), not kombu's silent retry.
        connection.ensure_connection(max_retries=0, reraise_as_library_errors=False)
        return connection
