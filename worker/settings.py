"""All configuration, read once from `RENEWALS_*` environment variables at start-up."""

import socket
from importlib.metadata import version
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from events import DEFAULT_MAX_FUTURE

VERSION = version("renewal-routing")
"""The installed package's version: `renewals --version` and `x-worker-version` both read it."""


class Settings(BaseSettings):
    """Every knob the worker and the CLI have; see the README for the table."""

    model_config = SettingsConfigDict(env_prefix="RENEWALS_", frozen=True)

    amqp_url: str = Field(
        "amqp://guest:guest@localhost:5672/",
        description="the broker: one URL, or the nodes of a cluster separated by ';' (amqps:// for TLS)",
    )
    amqp_ca_file: str | None = Field(None, description="CA bundle for amqps:// (system CAs when unset)")
    amqp_cert_file: str | None = Field(None, description="client certificate for amqps:// (PEM)")
    amqp_key_file: str | None = Field(None, description="client certificate's private key (PEM)")
    amqp_server_name: str | None = Field(
        None, description="name the broker's certificate must carry (each URL's host when unset)"
    )
    store_url: str = "sqlite:///renewals.db"

    events_exchange: str = "renewals.events"
    queue: str = "renewals.worker"
    queue_type: Literal["quorum", "classic"] = "quorum"
    delivery_limit: int = Field(20, ge=1, description="quorum redeliveries before the broker dead-letters")
    notifications_exchange: str = "renewals.notifications"
    unrouted_queue: str = "renewals.notifications.unrouted"
    dead_letter_queue: str = "renewals.worker.dlq"

    retry_delays: tuple[float, ...] = Field((1.0, 10.0, 60.0), min_length=1)
    max_attempts: int = Field(
        5, ge=1, description="deliveries of a failing message before it is dead-lettered"
    )
    max_crashes: int = Field(
        3, ge=1, description="worker deaths while handling one message before it is dead-lettered"
    )

    prefetch: int = Field(1000, ge=1)
    batch_size: int = Field(500, ge=1)
    batch_idle_ms: float = Field(
        0.0,
        ge=0,
        description="wait this long for more deliveries before a batch is flushed (0: take what has arrived)",
    )
    batch_max_wait_ms: float = Field(
        10.0, ge=0, description="flush a batch this long after its first delivery"
    )
    store_lock_timeout: float = Field(
        5.0, gt=0, description="seconds a statement waits for a lock (PostgreSQL) or a busy file (SQLite)"
    )
    store_statement_timeout: float = Field(30.0, gt=0, description="PostgreSQL statement_timeout, seconds")
    store_idle_in_transaction_timeout: float = Field(
        60.0, gt=0, description="PostgreSQL idle_in_transaction_session_timeout, seconds"
    )
    store_conflict_redos: int = Field(
        3, ge=0, description="times a batch is redone in-process after a deadlock or lock timeout"
    )
    store_migrate: bool = Field(True, description="apply missing schema migrations at start")
    outbox_grace: float = Field(
        30.0, gt=0, description="seconds before another worker may republish an unconfirmed outbox row"
    )
    outbox_sweep_interval: float = Field(10.0, gt=0, description="seconds between sweeps for orphaned rows")
    inbox_retention_days: float = Field(
        30.0, gt=0, description="days a processed event id is remembered (and crash counts kept)"
    )
    reminder_retention_days: float = Field(
        7.0, ge=0, description="days after its renewal date that a reminder key is kept"
    )
    prune_interval: float = Field(60.0, gt=0, description="seconds between pruning rounds")
    dead_letter_retention_days: float = Field(
        30.0, gt=0, description="days a resolved dead letter (replayed, purged, archived) is kept"
    )
    replay_rate: float = Field(
        50.0, gt=0, description="dead letters a replay publishes per second unless --rate says otherwise"
    )
    confirm_timeout: float = Field(15.0, gt=0)
    shutdown_grace: float = Field(30.0, gt=0)
    heartbeat: int = Field(30, ge=0)
    reconnect_max_delay: float = Field(30.0, gt=0)
    max_clock_skew: float = Field(
        DEFAULT_MAX_FUTURE.total_seconds(),
        ge=0,
        description="seconds an event's time may be ahead of our clock before it is invalid_envelope",
    )

    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve /metrics, /healthz and /readyz on this port (off when unset)"
    )
    metrics_host: str = Field("0.0.0.0", description="address the metrics and health endpoints listen on")
    health_stale_after: float = Field(
        60.0, gt=0, description="seconds without a main-loop tick after which /healthz fails"
    )
    # The operations console (`renewals console`); closed unless a way in is configured.
    console_users: str | None = Field(
        None, description="the console's users file (argon2 hashes, a role each); one way in"
    )
    console_proxy_addresses: tuple[str, ...] = Field(
        (), description="addresses (or CIDR networks) of the trusted reverse proxy; the other way in"
    )
    console_proxy_user_header: str = Field("X-Forwarded-User", description="the proxy's user header")
    console_proxy_groups_header: str = Field(
        "X-Forwarded-Groups", description="the proxy's groups header (comma-separated)"
    )
    console_proxy_roles: dict[str, Literal["viewer", "operator"]] = Field(
        {}, description='proxy group to console role, as JSON: {"sre": "operator"}'
    )
    console_secret: SecretStr | None = Field(None, description="key that signs console sessions")
    console_secret_file: str | None = Field(
        None, description="file holding that key (mode 0600; created when missing)"
    )
    console_session_hours: float = Field(8.0, gt=0, description="hours a console sign-in lasts")
    console_secure_cookies: bool = Field(
        False, description="mark the session cookie Secure (set it when TLS ends at a proxy in front)"
    )

    source: str = "urn:renewal-routing:worker"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def host(self) -> str:
        return socket.gethostname()

    def retry_queue(self, attempt: int) -> tuple[str, float]:
        """The delay tier for the retry after `attempt` failed deliveries (1-based)."""
        delay = self.retry_delays[min(attempt, len(self.retry_delays)) - 1]
        return f"{self.queue}.retry.{int(delay * 1000)}ms", delay
