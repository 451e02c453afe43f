"""Settings and the secrets they hold."""

import pytest

from worker.redaction import masked
from worker.settings import Settings


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("amqp://guest:s3cret@rabbit:5672/vh", "amqp://guest:***@rabbit:5672/vh"),
        ("postgresql://app:pa%40ss@db/renewals", "postgresql://app:***@db/renewals"),
        ("amqp://rabbit/", "amqp://rabbit/"),
        ("sqlite:///renewals.db", "sqlite:///renewals.db"),
        ("amqp://guest:pa/ss@rabbit:5672/vh", "amqp://guest:***@rabbit:5672/vh"),
        ("amqp://guest:p?a#s@rabbit/vh", "amqp://guest:***@rabbit/vh"),
        ("amqp://guest:p@ss@rabbit/vh", "amqp://guest:***@rabbit/vh"),
        (
            "amqp://a:one@n1:5672/vh;amqp://b:two@n2:5673/vh;amqp://c:th/ree@n3/vh",
            "amqp://a:***@n1:5672/vh;amqp://b:***@n2:5673/vh;amqp://c:***@n3/vh",
        ),
        (
            "postgresql://db/renewals?user=app&password=s3cret&sslmode=require",
            "postgresql://db/renewals?user=app&password=***&sslmode=require",
        ),
        ("host=db user=app password='it s' dbname=renewals", "host=db user=app password=*** dbname=renewals"),
        ("host=db sslpassword=key dbname=renewals", "host=db sslpassword=*** dbname=renewals"),
    ],
)
def test_passwords_in_urls_are_masked(url: str, shown: str) -> None:
    """Whatever the scheme, a password never reaches a log line."""
    assert masked(url) == shown


def test_settings_come_from_renewals_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """RENEWALS_* variables configure the worker, JSON for structured values."""
    monkeypatch.setenv("RENEWALS_QUEUE", "other.queue")
    monkeypatch.setenv("RENEWALS_RETRY_DELAYS", "[0.5, 2]")
    settings = Settings()
    assert settings.queue == "other.queue"
    assert settings.retry_delays == (0.5, 2.0)
    assert settings.retry_queue(1) == ("other.queue.retry.500ms", 0.5)
    assert settings.retry_queue(9) == ("other.queue.retry.2000ms", 2.0)


def test_the_clock_skew_tolerance_defaults_to_the_contracts_and_is_configurable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RENEWALS_MAX_CLOCK_SKEW is seconds, 300 by default (events.DEFAULT_MAX_FUTURE), never negative."""
    assert Settings().max_clock_skew == 300
    monkeypatch.setenv("RENEWALS_MAX_CLOCK_SKEW", "30")
    assert Settings().max_clock_skew == 30
    monkeypatch.setenv("RENEWALS_MAX_CLOCK_SKEW", "-1")
    with pytest.raises(ValueError):
        Settings()
