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


def test_dockerfile_copies_every_package() -> None:
    """The image holds events/, handlers/ and worker/."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    for package in ("events", "handlers", "worker"):
        assert f"COPY {package} ./{package}" in dockerfile


def test_readme_documents_every_setting() -> None:
    """The README's configuration table names each Settings field."""
    readme = (ROOT / "README.md").read_text()
    for field in Settings.model_fields:
        assert (
            f"`{field.upper()}`" in readme
            or f"/ `{field.upper()}`" in readme
            or f"`{field.upper()}` /" in readme
        ), field


def command_paths(group: click.Group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and subcommand under `group`, as the words that invoke it."""
    paths = []
    for name, command in group.commands.items():
        paths.append((*prefix, name))
        if isinstance(command, click.Group):
            paths += command_paths(command, (*prefix, name))
    return paths


def test_every_command_has_help() -> None:
    """`--help` works on the group, on each command and on each subcommand of a group, and says something."""
    runner = CliRunner()
    assert runner.invoke(main, ["--help"]).exit_code == 0
    paths = command_paths(main)
    assert {("store", "migrate"), ("store", "status"), ("dlq", "replay"), ("owners", "show")} <= set(paths)
    for path in paths:
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert f" {' '.join(path)} [OPTIONS]" in result.output, (path, result.output)
        description = result.output.split("\n\n")[1]
        assert not description.lstrip().startswith("Options:"), f"{path} has no description"
