"""The fault runner's command line and the 4.x nodes' paths, without starting anything."""

from pathlib import Path

import pytest

from support.chaos.__main__ import parse
from support.chroot_node import ChrootNode


def test_a_cluster_can_be_asked_for_on_each_rabbitmq_series() -> None:
    """`--cluster --rabbitmq 4.3` gives a 4.3 cluster; without --rabbitmq the cluster is the host's 3.10."""
    assert parse(["--cluster", "--rabbitmq", "4.3", "--node-stops", "2"]).rabbitmq == "4.3"
    assert parse(["--cluster"]).rabbitmq == "3.10"


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--rabbitmq", "4.3"], "RabbitMQ 4.3 is for --cluster"),
        (["--cluster", "--rabbitmq", "3.13"], "unknown RabbitMQ '3.13': choose one of 3.10, 4.0, 4.3"),
    ],
    ids=["4.x-without-cluster", "unknown-series"],
)
def test_a_rabbitmq_series_the_runner_cannot_deploy_is_refused_in_one_line(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 4.x single node, or a series outside the matrix, stops the runner with a usage error that says why."""
    with pytest.raises(SystemExit) as stopped:
        parse(argv)
    assert stopped.value.code == 2 and said in capsys.readouterr().err.splitlines()[-1]


def test_a_chroot_node_names_its_files_from_inside_the_chroot(tmp_path: Path) -> None:
    """A 4.x node's environment and commands give paths as the chroot sees them, and run as its `rabbitmq` user with the node's own env file."""
    root = tmp_path / "forky"
    node = ChrootNode.prepare_in(root, "renewals-spare-abc-1@localhost", root / "tmp" / "run")
    assert node.environment()["RABBITMQ_PID_FILE"] == "/tmp/run/renewals-spare-abc-1/rabbitmq.pid"
    assert node.environment()["RABBITMQ_CONFIG_FILE"] == "/tmp/run/renewals-spare-abc-1/rabbitmq.conf"
    assert node.command("rabbitmqctl", "ping") == [
        "chroot",
        str(root),
        "/usr/sbin/runuser",
        "-u",
        "rabbitmq",
        "--",
        "env",
        "HOME=/var/lib/rabbitmq",
        "RABBITMQ_CONF_ENV_FILE=/tmp/run/renewals-spare-abc-1/rabbitmq-env.conf",
        "/usr/lib/rabbitmq/bin/rabbitmqctl",
        "ping",
    ]
    assert "ERL_EPMD_ADDRESS=127.0.0.1" in node.env_file.read_text()
