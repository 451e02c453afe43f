"""The files a deployment reads agree with the code."""

from pathlib import Path
from urllib.parse import urlsplit

import click
import yaml
from click.testing import CliRunner

from worker.cli import main
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_compose_sets_only_real_settings() -> None:
    """Every RENEWALS_* variable in docker-compose.yml is a field of Settings."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    variables = compose["services"]["worker"]["environment"]
    assert {"rabbitmq", "postgres", "worker"} <= set(compose["services"])
    for name in variables:
        assert (
            name.startswith("RENEWALS_") and name.removeprefix("RENEWALS_").lower() in Settings.model_fields
        )


def test_compose_runs_scalable_workers_on_postgresql() -> None:
    """`docker compose up --scale worker=3` works by reading: no fixed name or host port on the
    worker, every service it needs is healthy first, and its store is the compose PostgreSQL."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    worker = services["worker"]
    assert "container_name" not in worker and "ports" not in worker
    assert set(worker["depends_on"]) == {"rabbitmq", "postgres"}
    for name, needed in worker["depends_on"].items():
        assert needed == {"condition": "service_healthy"} and "healthcheck" in services[name], name
    store = urlsplit(worker["environment"]["RENEWALS_STORE_URL"])
    database = services["postgres"]["environment"]
    assert (store.scheme, store.hostname, store.port) == ("postgresql", "postgres", 5432)
    assert (store.username, store.password, store.path) == (
        database["POSTGRES_USER"],
        database["POSTGRES_PASSWORD"],
        "/" + database["POSTGRES_DB"],
    )
    assert urlsplit(worker["environment"]["RENEWALS_AMQP_URL"]).hostname == "rabbitmq"
    grace = int(str(worker["stop_grace_period"]).removesuffix("s"))
    assert grace > Settings().shutdown_grace
    assert "/readyz" in " ".join(worker["healthcheck"]["test"])


def test_compose_broker_ports_leave_a_local_broker_alone() -> None:
    """The compose RabbitMQ is published on 5673 and 15673, as the README says, so it starts
    beside a local broker on 5672 and 15672."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    published = [str(port).split(":")[0] for port in compose["services"]["rabbitmq"]["ports"]]
    assert published == ["5673", "15673"]
    readme = (ROOT / "README.md").read_text()
    assert "at 5673 (AMQP) and 15673 (management)" in readme


def test_dockerfile_copies_every_package() -> None:
    """The image holds events/, handlers/ and worker/."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("events", "handlers", "worker"):
        assert f"COPY {package} ./{package}" in dockerfile


def test_the_configuration_document_names_every_setting() -> None:
    """docs/configuration.md's table names each Settings field."""
    readme = (ROOT / "docs" / "configuration.md").read_text()
    for field in Settings.model_fields:
        assert (
            f"`{field.upper()}`" in readme
            or f"/ `{field.upper()}`" in readme
            or f"`{field.upper()}` /" in readme
        ), field


def test_every_command_has_help() -> None:
    """`--help` works on the group and on every command and subcommand, each says what it does,
    and every option of every command is explained."""

    def walk(command: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
        found = [(path, command)]
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                found += walk(sub, [*path, name])
        return found

    runner = CliRunner()
    commands = walk(main, [])
    assert len(commands) >= 15
    for path, command in commands:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert (command.help or "").strip(), path
        for parameter in command.params:
            if isinstance(parameter, click.Option) and parameter.name != "help":
                assert parameter.help, (path, parameter.name)


def test_the_image_health_check_probes_the_readiness_endpoint_it_serves() -> None:
    """The Dockerfile sets only real settings, serves the endpoints, and its HEALTHCHECK asks /readyz
    on the port it configured."""
    import re

    dockerfile = (ROOT / "Dockerfile").read_text()
    variables = dict(re.findall(r"(RENEWALS_[A-Z_]+)=(\S+)", dockerfile))
    assert all(name.removeprefix("RENEWALS_").lower() in Settings.model_fields for name in variables)
    port = variables["RENEWALS_METRICS_PORT"]
    assert f"EXPOSE {port}" in dockerfile
    # The worker listens on 127.0.0.1 unless told otherwise; in a container a scrape comes from outside.
    assert variables["RENEWALS_METRICS_HOST"] == "0.0.0.0" != Settings().metrics_host
    assert re.search(rf"HEALTHCHECK .*\n?.*http://127\.0\.0\.1:{port}/readyz", dockerfile)
