"""Settings and the secrets they hold."""

import pytest

from worker.redaction import masked
from worker.settings import ConfigurationError, Settings, load_settings


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


def test_every_number_setting_has_an_upper_bound() -> None:
    """No number setting is unbounded: each has the largest value the code can honour (a 16-bit
    AMQP field, PostgreSQL's 32-bit milliseconds, what a datetime holds, a year of waiting)."""
    unbounded = [
        name
        for name, field in Settings.model_fields.items()
        if field.annotation in (int, float, int | None)
        and not any(getattr(rule, "le", None) is not None for rule in field.metadata)
    ]
    assert unbounded == []


def test_a_bad_value_is_one_line_naming_the_setting_the_problem_and_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """load_settings turns pydantic's report into one line: the variable, its value (password
    masked), what is wrong and what to write instead."""
    monkeypatch.setenv("RENEWALS_AMQP_URL", "http://guest:s3cret@rabbit/")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value) == (
        "RENEWALS_AMQP_URL=http://guest:***@rabbit/: the scheme must be amqp:// or amqps://;"
        " write it as amqp://user:password@host:5672/vhost"
    )
    monkeypatch.delenv("RENEWALS_AMQP_URL")
    monkeypatch.setenv("RENEWALS_PREFETCH", "70000")
    monkeypatch.setenv("RENEWALS_HEARTBEAT", "-1")
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(
        "RENEWALS_PREFETCH=70000: input should be less than or equal to 65535;"
    )
    assert str(caught.value).endswith("(and 1 more problem)")


def test_a_misspelt_setting_is_one_warning_line_naming_the_closest_setting() -> None:
    """RENEWALS_PREFTECH is no setting: the command still runs, and says once which setting was meant."""
    from click.testing import CliRunner

    from worker.cli import main

    result = CliRunner().invoke(
        main, ["asyncapi"], env={"RENEWALS_PREFTECH": "5", "RENEWALS_LOG_FORMAT": "json"}
    )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "settings.unknown_variable" in line]
    assert len(warnings) == 1, result.stderr
    assert '"variable": "RENEWALS_PREFTECH"' in warnings[0] and "RENEWALS_PREFETCH" in warnings[0]


def test_known_settings_and_the_tooling_variables_raise_no_warning() -> None:
    """Only names that are neither a setting nor the test tooling's are reported; a far-off name gets no guess."""
    from worker.settings import unknown_variables

    environ = {
        "RENEWALS_PREFETCH": "5",
        "renewals_batch_size": "10",
        "RENEWALS_TEST_BROKERS": "3.10",
        "RENEWALS_KEEP_SPARE": "1",
        "RENEWALS_ZZZZZZZZ": "1",
        "PATH": "/bin",
    }
    assert unknown_variables(environ) == [("RENEWALS_ZZZZZZZZ", None)]


@pytest.mark.parametrize("rate", ["inf", "nan", "-inf", "0", "-1", "100001"])
def test_a_replay_rate_that_cannot_be_held_is_one_line(monkeypatch: pytest.MonkeyPatch, rate: str) -> None:
    """RENEWALS_REPLAY_RATE infinite, NaN, zero, negative or above 100,000 is refused in one line naming it."""
    monkeypatch.setenv("RENEWALS_REPLAY_RATE", rate)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert str(caught.value).startswith(f"RENEWALS_REPLAY_RATE={rate}: ") and "\n" not in str(caught.value)
