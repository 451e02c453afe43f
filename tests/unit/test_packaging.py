"""The files a deployment reads agree with the code."""

import subprocess
import sys
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
            context = click.Context(command)
            for name in command.list_commands(context):  # the lazy group imports each as asked
                sub = command.get_command(context, name)
                assert sub is not None, name
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


def _tested_series() -> set[str]:
    """The RabbitMQ series the tests run on (support.services.BROKERS)."""
    from support.services import BROKERS

    return set(BROKERS)


def test_compose_runs_the_console_on_loopback_with_the_users_file_read_only() -> None:
    """The console service runs `renewals console`, sets only real settings, publishes its port on
    the host's loopback only, mounts the users file read-only where RENEWALS_CONSOLE_USERS says,
    and waits for a healthy broker and store."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    console = compose["services"]["console"]
    assert console["command"][0] == "console"
    port = console["command"][console["command"].index("--port") + 1]
    assert console["command"][console["command"].index("--host") + 1] == "0.0.0.0"  # inside the container
    environment = console["environment"]
    for name in environment:
        assert (
            name.startswith("RENEWALS_") and name.removeprefix("RENEWALS_").lower() in Settings.model_fields
        )
    assert (
        environment["RENEWALS_STORE_URL"]
        == compose["services"]["worker"]["environment"]["RENEWALS_STORE_URL"]
    )
    assert [str(p) for p in console["ports"]] == [f"127.0.0.1:{port}:{port}"]
    mounts = [str(volume).split(":") for volume in console["volumes"]]
    users = [m for m in mounts if len(m) == 3 and m[1] == environment["RENEWALS_CONSOLE_USERS"]]
    assert users and users[0][2] == "ro" and users[0][0] == "./console-users.json"
    assert set(console["depends_on"]) == {"rabbitmq", "postgres"}


def test_compose_rabbitmq_is_a_tested_series() -> None:
    """The compose broker's image tag names a series the tests run on (3.10, 4.0 or 4.3)."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    image = compose["services"]["rabbitmq"]["image"]
    name, tag = image.split(":")
    assert name == "rabbitmq"
    series = ".".join(tag.split("-")[0].split(".")[:2])
    assert series in _tested_series(), image


def test_the_image_installs_the_console_extra_its_uid_owning_the_users_file() -> None:
    """The image installs the otel and console extras (both defined in pyproject) as uid 1000,
    the owner compose's users file needs."""
    import re
    import tomllib

    dockerfile = (ROOT / "Dockerfile").read_text()
    installed = re.search(r"pip install --no-cache-dir '\.\[([a-z,]+)\]'", dockerfile)
    assert installed is not None
    extras = set(installed.group(1).split(","))
    defined = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras == {"otel", "console"} and extras <= set(defined)
    assert "useradd --create-home --uid 1000 renewals" in dockerfile


def test_the_build_context_leaves_out_secrets_stores_and_caches() -> None:
    """.dockerignore names the virtualenv, the stores, the users and password files, .git and the caches."""
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    needed = {".venv", ".git", "*.db", "*.db-wal", "renewals.db*", "console-users.json", "*.password"}
    needed |= {"**/__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", "*.egg-info"}
    assert needed <= ignored, needed - ignored
    for kept in ("pyproject.toml", "README.md", "events", "handlers", "worker"):
        assert kept not in ignored  # what the Dockerfile copies


def test_git_ignores_secrets_and_stores() -> None:
    """`git check-ignore` says each sample secret or store path is ignored, and a source file is not."""
    import subprocess

    samples = [
        "console-users.json",
        "deploy/console-users.json",
        "ops.password",
        "renewals.db",
        "renewals.db-wal",
        "data/renewals.db-shm",
        "console-secret",
        "session.secret",
        ".env",
    ]
    found = subprocess.run(
        ["git", "check-ignore", "--no-index", *samples], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert sorted(found.stdout.split()) == sorted(samples), found.stderr
    source = subprocess.run(
        ["git", "check-ignore", "--no-index", "worker/console/app.py"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert source.returncode == 1  # not ignored


def test_the_command_group_imports_a_subcommand_only_when_it_is_asked_for() -> None:
    """`renewals run` starts without importing the dead-letter tools, the console or erasure: the group loads each subcommand's module by name."""
    probe = (
        "import sys; from worker.cli import main, COMMANDS; import click;"
        " main.get_command(click.Context(main), 'run');"
        " print(sorted(m for m in ('worker.cli.dlq', 'worker.cli.console', 'worker.cli.forget',"
        " 'worker.cli.reminders', 'worker.erasure', 'worker.console') if m in sys.modules))"
    )
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]", found.stdout
