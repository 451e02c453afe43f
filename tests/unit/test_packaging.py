"""The files a deployment reads agree with the code."""

from pathlib import Path

import yaml
from click.testing import CliRunner

from worker.cli import main
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_compose_sets_only_real_settings() -> None:
    """Every RENEWALS_* variable in docker-compose.yml is a field of Settings."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    variables = compose["services"]["worker"]["environment"]
    assert {"rabbitmq", "worker"} <= set(compose["services"])
    for name in variables:
        assert (
            name.startswith("RENEWALS_") and name.removeprefix("RENEWALS_").lower() in Settings.model_fields
        )


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


def test_every_command_has_help() -> None:
    """`--help` works on the group and on each command."""
    runner = CliRunner()
    assert runner.invoke(main, ["--help"]).exit_code == 0
    for name in main.commands:  # type: ignore[attr-defined]
        result = runner.invoke(main, [name, "--help"])
        assert result.exit_code == 0, (name, result.output)


def test_the_image_health_check_probes_the_readiness_endpoint_it_serves() -> None:
    """The Dockerfile sets only real settings, serves the endpoints, and its HEALTHCHECK asks /readyz
    on the port it configured."""
    import re

    dockerfile = (ROOT / "Dockerfile").read_text()
    variables = dict(re.findall(r"(RENEWALS_[A-Z_]+)=(\S+)", dockerfile))
    assert all(name.removeprefix("RENEWALS_").lower() in Settings.model_fields for name in variables)
    port = variables["RENEWALS_METRICS_PORT"]
    assert f"EXPOSE {port}" in dockerfile
    assert re.search(rf"HEALTHCHECK .*\n?.*http://127\.0\.0\.1:{port}/readyz", dockerfile)
