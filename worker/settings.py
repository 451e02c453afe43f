"""All configuration, read once from `RENEWALS_*` environment variables at start-up."""

import difflib
import json
import os
import socket
from collections.abc import Mapping
from importlib.metadata import version
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from events import DEFAULT_MAX_FUTURE, INPUTS
from worker.broker.endpoints import Broker
from worker.printable import printable
from worker.redaction import masked

VERSION = version("renewal-routing")
"""The installed package's version: `renewals --version` and `x-worker-version` both read it."""

# Bounds the code can honour. PostgreSQL holds its timeouts in milliseconds as a 32-bit integer,
# and so does RabbitMQ a retry tier's x-message-ttl; every other wait is bounded by a year.
INT32_MS_IN_SECONDS = 2_147_483
LONGEST_WAIT_SECONDS = 366 * 86_400
LONGEST_RETENTION_DAYS = 36_500  # a hundred years: dates stay well inside what datetime holds
SHORT_STRING_BYTES = 255  # an AMQP short string: the longest queue or exchange name
MAX_REPLAY_RATE = 100_000  # letters a second: a replay's rate, from any door


class ConfigurationError(ValueError):
    """A setting that cannot work, in one line: which setting, what is wrong, and the fix."""


def _broker_urls(value: str) -> str:
    try:
        Broker.from_urls(value)
    except ValueError as exc:
        why = str(exc).removeprefix(f"{masked(value)}: ")  # the value is shown once, beside the name
        raise ValueError(f"{why}; write it as amqp://user:password@host:5672/vhost") from None
    return value


def _store_url(value: str) -> str:
    if value.startswith(("postgresql://", "postgres://")):
        return value
    if value.startswith("sqlite:///") and value.removeprefix("sqlite:///"):
        return value
    if value.startswith("sqlite:"):
        raise ValueError(
            "the SQLite path is missing (an empty path would be a store in memory, lost at every stop);"
            " write sqlite:///renewals.db (relative to the working directory) or sqlite:////var/lib/renewals.db"
        )
    raise ValueError(
        "not a store URL; write sqlite:///renewals.db or postgresql://user:password@host/database"
    )


def _amqp_name(value: str) -> str:
    if not value:
        raise ValueError("a name is needed (an empty name is the broker's default exchange)")
    if value.startswith("amq."):
        raise ValueError("names starting with 'amq.' are reserved by the broker; choose another")
    if len(value.encode()) > SHORT_STRING_BYTES:
        raise ValueError(f"longer than the broker's {SHORT_STRING_BYTES} bytes; choose a shorter name")
    return value


def _json_list(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        raise ValueError("expected a JSON list of seconds, like [1, 10, 60]") from None


def _delays(value: tuple[float, ...]) -> tuple[float, ...]:
    if not all(0.001 <= delay <= INT32_MS_IN_SECONDS for delay in value):
        raise ValueError(
            f"every delay must be at least 0.001 and at most {INT32_MS_IN_SECONDS} seconds (a retry"
            " tier's TTL is a 32-bit count of milliseconds); write a JSON list like [1, 10, 60]"
        )
    return value


AmqpName = Annotated[str, AfterValidator(_amqp_name)]
Seconds = Annotated[float, Field(gt=0, le=LONGEST_WAIT_SECONDS)]
PostgresSeconds = Annotated[float, Field(gt=0, le=INT32_MS_IN_SECONDS)]


def _http_url(value: str | None) -> str | None:
    """An http(s) URL with a host, or None (off)."""
    if value is None:
        return None
    scheme, _, rest = value.partition("://")
    if scheme not in ("http", "https") or not rest.strip("/"):
        raise ValueError("expected an http:// or https:// URL, like http://alertmanager:9093")
    return value


def _pairs(value: Any) -> Any:
    """A JSON object as (key, value) pairs: a mapping would make the frozen settings unhashable."""
    return tuple(sorted(value.items())) if isinstance(value, dict) else value


def _event_types(value: Any) -> Any:
    """Event types, comma-separated (`OwnerChanged,RenewalApproaching`) or a JSON list; each one
    the worker consumes."""
    if isinstance(value, str):
        value = json.loads(value) if value.strip().startswith("[") else value.split(",")
    if not isinstance(value, (list, tuple)):
        return value
    names = tuple(str(name).strip() for name in value if str(name).strip())
    known = sorted(kind.type for kind in INPUTS)
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not an event type the worker consumes; write some of {known}")
    return tuple(sorted(set(names)))


class Settings(BaseSettings):
    """Every knob the worker and the CLI have; docs/configuration.md has the table."""

    model_config = SettingsConfigDict(env_prefix="RENEWALS_", frozen=True)

    amqp_url: Annotated[str, AfterValidator(_broker_urls)] = Field(
        "amqp://guest:guest@localhost:5672/",
        description="the broker: one URL, or the nodes of a cluster separated by ';' (amqps:// for TLS)",
    )
    amqp_ca_file: str | None = Field(None, description="CA bundle for amqps:// (system CAs when unset)")
    amqp_cert_file: str | None = Field(None, description="client certificate for amqps:// (PEM)")
    amqp_key_file: str | None = Field(None, description="client certificate's private key (PEM)")
    amqp_server_name: str | None = Field(
        None, description="name the broker's certificate must carry (each URL's host when unset)"
    )
    store_url: Annotated[str, AfterValidator(_store_url)] = "sqlite:///renewals.db"

    events_exchange: AmqpName = "renewals.events"
    queue: AmqpName = "renewals.worker"
    queue_type: Literal["quorum", "classic"] = "quorum"
    delivery_limit: int = Field(
        20, ge=1, le=2**31 - 1, description="quorum redeliveries before the broker dead-letters"
    )
    notifications_exchange: AmqpName = "renewals.notifications"
    unrouted_queue: AmqpName = "renewals.notifications.unrouted"
    dead_letter_queue: AmqpName = "renewals.worker.dlq"

    retry_delays: Annotated[
        tuple[float, ...], NoDecode, BeforeValidator(_json_list), AfterValidator(_delays)
    ] = Field((1.0, 10.0, 60.0), min_length=1, max_length=20)
    max_attempts: int = Field(
        5, ge=1, le=1000, description="deliveries of a failing message before it is dead-lettered"
    )
    max_crashes: int = Field(
        3, ge=1, le=1000, description="worker deaths while handling one message before it is dead-lettered"
    )

    prefetch: int = Field(1000, ge=1, le=65_535, description="AMQP's prefetch count is 16 bits")
    batch_size: int = Field(500, ge=1, le=65_535)
    batch_idle_ms: float = Field(
        0.0,
        ge=0,
        le=LONGEST_WAIT_SECONDS * 1000,
        description="wait this long for more deliveries before a batch is flushed (0: take what has arrived)",
    )
    batch_max_wait_ms: float = Field(
        10.0,
        ge=0,
        le=LONGEST_WAIT_SECONDS * 1000,
        description="flush a batch this long after its first delivery",
    )
    store_lock_timeout: PostgresSeconds = Field(
        5.0, description="seconds a statement waits for a lock (PostgreSQL) or a busy file (SQLite)"
    )
    store_statement_timeout: PostgresSeconds = Field(
        30.0, description="PostgreSQL statement_timeout, seconds"
    )
    store_idle_in_transaction_timeout: PostgresSeconds = Field(
        60.0, description="PostgreSQL idle_in_transaction_session_timeout, seconds"
    )
    store_conflict_redos: int = Field(
        3, ge=0, le=100, description="times a batch is redone in-process after a deadlock or lock timeout"
    )
    store_migrate: bool = Field(True, description="apply missing schema migrations at start")
    outbox_grace: Seconds = Field(
        30.0, description="seconds before another worker may republish an unconfirmed outbox row"
    )
    outbox_sweep_interval: Seconds = Field(10.0, description="seconds between sweeps for orphaned rows")
    inbox_retention_days: float = Field(
        30.0,
        gt=0,
        le=LONGEST_RETENTION_DAYS,
        description="days a processed event id is remembered (and crash counts kept)",
    )
    reminder_retention_days: float = Field(
        7.0,
        ge=0,
        le=LONGEST_RETENTION_DAYS,
        description="days after its renewal date that a reminder key is kept",
    )
    ledger_retention_days: float = Field(
        400.0,
        gt=0,
        le=LONGEST_RETENTION_DAYS,
        description="days a reminder ledger row and an owner-history row are kept",
    )
    prune_interval: Seconds = Field(60.0, description="seconds between pruning rounds")
    dead_letter_retention_days: float = Field(
        30.0,
        gt=0,
        le=LONGEST_RETENTION_DAYS,
        description="days a resolved dead letter (replayed, purged, archived) is kept",
    )
    replay_rate: float = Field(
        50.0,
        gt=0,
        le=MAX_REPLAY_RATE,
        allow_inf_nan=False,
        description="dead letters a replay publishes per second unless --rate says otherwise",
    )
    dlq_edit_enabled: bool = Field(
        False, description="operators may edit a dead letter's body and headers and retry it (off by default)"
    )
    dlq_edit_types: Annotated[tuple[str, ...], NoDecode, BeforeValidator(_event_types)] = Field(
        (), description="the event types an edit may touch, comma-separated (none until listed)"
    )
    replay_canary_timeout: float = Field(
        60.0,
        gt=0,
        le=86_400,
        allow_inf_nan=False,
        description="seconds a canary replay waits for its letters' outcomes before it stops",
    )
    replay_brake_window: int = Field(
        20, ge=1, le=10_000, description="a replay's latest outcomes its brake looks at"
    )
    replay_brake_share: float = Field(
        0.5,
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="a replay pauses when more than this share of its brake window failed again (1: never)",
    )
    confirm_timeout: Seconds = 15.0
    shutdown_grace: Seconds = 30.0
    heartbeat: int = Field(30, ge=0, le=65_535, description="AMQP heartbeat, seconds (16 bits)")
    reconnect_max_delay: Seconds = 30.0
    max_clock_skew: float = Field(
        DEFAULT_MAX_FUTURE.total_seconds(),
        ge=0,
        le=LONGEST_WAIT_SECONDS,
        description="seconds an event's time may be ahead of our clock before it is invalid_envelope",
    )

    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve /metrics, /healthz and /readyz on this port (off when unset)"
    )
    metrics_host: str = Field(
        "127.0.0.1",
        description="address the endpoints listen on (0.0.0.0: every interface, as the image sets)",
    )
    health_stale_after: Seconds = Field(
        60.0, description="seconds without a main-loop tick after which /healthz fails"
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
    console_proxy_roles: Annotated[
        tuple[tuple[str, Literal["viewer", "operator"]], ...], BeforeValidator(_pairs)
    ] = Field((), description='proxy group to console role, as JSON: {"sre": "operator"}')
    console_secret: SecretStr | None = Field(None, description="key that signs console sessions")
    console_secret_file: str | None = Field(
        None, description="file holding that key (mode 0600; created when missing)"
    )
    console_session_hours: float = Field(8.0, gt=0, le=24 * 366, description="hours a console sign-in lasts")
    console_session_idle_minutes: float = Field(
        30.0, gt=0, le=24 * 60 * 366, description="minutes without a request that end a console sign-in"
    )
    console_sign_in_free_failures: int = Field(
        5, ge=1, le=1000, description="failed sign-ins per user name and per address before each locks"
    )
    console_lockout_seconds: float = Field(
        15.0, ge=1, le=86400, description="the longest a user name or address is locked after failed sign-ins"
    )
    console_password_checks: int = Field(
        2, ge=1, le=64, description="password checks (argon2, 64 MiB each) the console runs at once"
    )
    console_secure_cookies: bool = Field(
        False, description="mark the session cookie Secure (set it when TLS ends at a proxy in front)"
    )
    alertmanager_url: Annotated[str | None, AfterValidator(_http_url)] = Field(
        None,
        description="Alertmanager's URL: the console shows what fires and can silence it (off when unset)",
    )

    processes: int = Field(
        1, ge=1, le=64, description="worker processes `renewals run` starts and supervises (1: no supervisor)"
    )

    source: str = Field("urn:renewal-routing:worker", min_length=1, max_length=1000)
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    # Tracing (docs/tracing.md) reads OpenTelemetry's own variables, not RENEWALS_* ones; the
    # SDK reads the rest (OTEL_SERVICE_NAME, OTEL_TRACES_SAMPLER...) itself, once it is loaded.
    otel_sdk_disabled: bool = Field(False, validation_alias="OTEL_SDK_DISABLED")
    otel_traces_exporter: str | None = Field(None, validation_alias="OTEL_TRACES_EXPORTER")
    otel_exporter_otlp_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    )

    @property
    def tracing(self) -> bool:
        """On when an exporter is named (other than `none`) or an OTLP endpoint is set, unless
        OTEL_SDK_DISABLED is true."""
        if self.otel_sdk_disabled:
            return False
        if self.otel_traces_exporter is not None:
            return self.otel_traces_exporter.strip().lower() not in ("", "none")
        return bool(self.otel_exporter_otlp_endpoint)

    @model_validator(mode="after")
    def _retry_queue_names_fit(self) -> "Settings":
        longest = max(self.retry_queue(tier)[0] for tier in range(1, len(self.retry_delays) + 1))
        if len(longest.encode()) > SHORT_STRING_BYTES:
            raise ValueError(
                f"RENEWALS_QUEUE: its retry queue {longest[:40]}... is longer than the broker's"
                f" {SHORT_STRING_BYTES} bytes; choose a shorter queue name"
            )
        return self

    @property
    def host(self) -> str:
        return socket.gethostname()

    def retry_queue(self, attempt: int) -> tuple[str, float]:
        """The delay tier for the retry after `attempt` failed deliveries (1-based)."""
        delay = self.retry_delays[min(attempt, len(self.retry_delays)) - 1]
        return f"{self.queue}.retry.{int(delay * 1000)}ms", delay


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment (and `overrides`); ConfigurationError, one line, if a value
    cannot work."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(_one_line(exc)) from None
    except SettingsError as exc:  # a value pydantic-settings could not even decode
        raise ConfigurationError(f"{exc}; see docs/configuration.md for the accepted values") from None


# RENEWALS_* variables that belong to the project's test and broker tooling, not to the worker.
TOOLING_VARIABLES = (
    "RENEWALS_TEST_",
    "RENEWALS_KEEP_SPARE",
    "RENEWALS_BROKERS_DIR",
    "RENEWALS_DEBIAN_MIRROR",
)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[tuple[str, str | None]]:
    """Each `RENEWALS_*` variable that names no setting (a typo is otherwise silently ignored),
    with the closest setting's variable, if one is close."""
    environ = os.environ if environ is None else environ
    known = [
        f"RENEWALS_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if not field.validation_alias
    ]
    unknown = sorted(
        name
        for name in environ
        if name.upper().startswith("RENEWALS_")
        and name.upper() not in known
        and not name.upper().startswith(TOOLING_VARIABLES)
    )
    return [
        (name, next(iter(difflib.get_close_matches(name.upper(), known, n=1, cutoff=0.6)), None))
        for name in unknown
    ]


def _one_line(error: ValidationError) -> str:
    """The first problem: `RENEWALS_X=value: what is wrong; the fix`, and how many more."""
    problems = error.errors(include_url=False)
    first = problems[0]
    field = str(first["loc"][0]) if first["loc"] else ""
    name = f"RENEWALS_{field.upper()}"
    value = printable(masked(str(first.get("input", ""))))  # one line, whatever the value holds
    shown = value if len(value) <= 80 else value[:77] + "..."
    message = str(first["msg"]).removeprefix("Value error, ")
    if first["type"] == "value_error":
        line = f"{name}={shown}: {message}" if field else message
    else:
        message = message[0].lower() + message[1:]
        default = Settings.model_fields[field].default if field in Settings.model_fields else None
        default = json.dumps(list(default)) if isinstance(default, tuple) else default
        fix = f"set {name} to such a value" + (
            f", or unset it for the default ({default})" if default is not None else ""
        )
        line = f"{name}={shown}: {message}; {fix}"
    more = len(problems) - 1
    return line + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else "")
