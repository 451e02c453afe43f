"""The deployment shapes of docs: a 3-node RabbitMQ cluster given as a URL list, and a TLS
listener with a CA and client certificates. Each runs on spare servers started here, on free
ports, so stopping a node or refusing a certificate disturbs nothing else. The cluster is the
host's 3.10, and (marked slow, `pytest -m slow`) three 4.0 or 4.3 nodes in the matrix's chroot."""

import json
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.chroot_node import chroot_cluster
from support.client import NAMES, Client, PacedPublisher, audit
from support.messages import contact, encode, owner_changed, renewal
from support.polling import wait_until
from support.spare_broker import SpareCluster, SpareTlsBroker, spare_cluster, spare_tls_broker
from support.worker_process import WorkerProcess
from tests.e2e.commands import dead_letters, ok, renewals
from tests.e2e.conftest import FAST_RETRIES

DORA = contact("dora", "client.example")


@pytest.fixture(
    scope="module",
    params=["3.10", pytest.param("4.0", marks=pytest.mark.slow), pytest.param("4.3", marks=pytest.mark.slow)],
    ids=lambda version: f"cluster-{version}",
)
def cluster(request: pytest.FixtureRequest) -> Iterator[SpareCluster]:
    """Three clustered nodes: the host's RabbitMQ 3.10, or 4.x in the matrix's chroot."""
    version: str = request.param
    with spare_cluster(3) if version == "3.10" else chroot_cluster(version, 3) as started:
        yield started


@pytest.fixture(scope="module")
def tls_broker() -> Iterator[SpareTlsBroker]:
    with spare_tls_broker() as broker:
        broker.ctl("add_user", "ops", "tls-s3cret")
        broker.ctl("set_permissions", "ops", ".*", ".*", ".*")
        yield broker


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start workers on a spare server (`url`, `env`); each is killed at the end, pass or fail."""
    started: list[WorkerProcess] = []

    def start(url: str, env: dict[str, str], wait: bool = True) -> WorkerProcess:
        started.append(WorkerProcess(url, tmp_path, env=env))
        return started[-1].start(wait)

    yield start
    for worker in started:
        worker.kill()


def queue_leader(cluster: SpareCluster, queue: str, ask: int) -> int:
    """The index of the node holding `queue`'s quorum leader, as node `ask` sees it."""
    listed = json.loads(cluster.ctl(ask, "list_queues", "name", "leader", "--formatter", "json"))
    leader = next(row["leader"] for row in listed if row["name"] == queue)
    return cluster.nodes.index(leader)


def connected_nodes(cluster: SpareCluster, ask: int, client_product: str) -> set[int]:
    """The nodes (indexes) holding a connection whose client library is `client_product`."""
    ports = [int(url.rsplit(":", 1)[1].strip("/")) for url in cluster.urls]
    listed = json.loads(
        cluster.ctl(ask, "list_connections", "port", "client_properties", "--formatter", "json")
    )
    return {
        ports.index(row["port"]) for row in listed if client_product in json.dumps(row["client_properties"])
    }


def collect(client: Client, queue: str, expected: set[str], timeout: float = 90.0) -> list:
    """Everything on `queue` until every expected event has a notification, and a moment more."""
    outputs: list = []

    def complete() -> bool:
        outputs.extend(client.drain(queue))
        return expected <= {json.loads(body)["data"]["causation_id"] for _, _, body in outputs}

    wait_until(complete, f"{len(expected)} notifications on {queue}", timeout, every=0.2)
    client.quiet(queue, 1.0)  # late copies, if any, are counted too
    return outputs + client.drain(queue)


def test_a_cluster_node_stopped_mid_stream_loses_nothing_and_keeps_the_dead_letters(
    cluster: SpareCluster, start_worker: Callable[..., WorkerProcess]
) -> None:
    """With all three URLs, the worker rides out the stop of the node it is on (which leads the dead-letter queue) during 3,000 events, and `renewals dlq list` reads the earlier dead letters, recorded in the store, while that node is gone."""
    worker = start_worker(cluster.url_list, FAST_RETRIES)
    store = {"RENEWALS_STORE_URL": worker.env["RENEWALS_STORE_URL"]}
    victim = queue_leader(cluster, NAMES.dead_letter_queue, ask=1)
    assert connected_nodes(cluster, 1, "py-amqp") == {victim}, "the worker declared its queues where it is"
    publisher_node = next(i for i in range(3) if i != victim)
    client = Client(cluster.urls[publisher_node])
    client.channel.queue_declare("observer", durable=True, arguments={"x-queue-type": "quorum"})
    client.channel.queue_bind("observer", NAMES.notifications_exchange, "#")

    bad = [renewal(f"nobody-{n}", "p-none", id=f"nobody-{n}") for n in range(3)]
    client.publish(bad)
    client.publish([encode(owner_changed("partner", "p-none", id="oc-bad"))], content_type="application/json")
    before = {*(event["id"] for event in bad), "oc-bad"}
    wait_until(
        lambda: {row["id"] for row in dead_letters(cluster.url_list, **store)} == before, "4 dead letters"
    )

    events = [renewal(f"cl-{n}", None, decision_maker=DORA, id=f"cl-evt-{n}") for n in range(3000)]
    billing = PacedPublisher(cluster.urls[publisher_node], events, per_second=600)
    billing.start()
    wait_until(lambda: client.count("observer") >= 500, "500 notifications before the stop", timeout=60)
    began = time.monotonic()
    cluster.stop_node(victim)
    stopped = time.monotonic() - began
    assert sorted(cluster.running_nodes()) == sorted(n for i, n in enumerate(cluster.nodes) if i != victim)
    wait_until(
        lambda: sorted(row["id"] for row in dead_letters(cluster.url_list, **store)) == sorted(before),
        "the dead letters, read through the list with their node gone",
        timeout=30,
    )
    worker.wait_for("worker.consuming", count=2, timeout=60)
    consuming_again = time.monotonic() - began
    cluster.start_node(victim)
    assert sorted(cluster.running_nodes()) == sorted(cluster.nodes)
    billing.join(60)
    assert billing.error is None, billing.error

    expected = {event["id"] for event in events}
    result = audit(collect(client, "observer", expected), expected)
    assert (result["lost"], result["unexpected"], result["events_with_two_ids"]) == (0, 0, 0), result
    print(  # the figures, with `pytest -s`
        f"{len(events)} events, lost {result['lost']}, two ids {result['events_with_two_ids']},"
        f" copies {result['duplicate_copies']},"
        f" {len(before)} dead letters listed with their node gone; stop took {stopped:.1f}s,"
        f" the worker consumed again {consuming_again:.1f}s after it began"
    )
    table = ok(renewals(cluster.url_list, "dlq", "list", **store)).stdout
    assert all(event_id in table for event_id in before), table
    assert sorted(row["id"] for row in dead_letters(cluster.url_list, **store)) == sorted(before)
    assert worker.wait_for("broker.connection_lost") and worker.running()
    assert client.quiet(NAMES.queue, 0.1) and client.quiet(NAMES.unrouted_queue, 0.0)
    client.close()
    assert worker.stop() == 0


def tls_env(broker: SpareTlsBroker, **overrides: str | None) -> dict[str, str]:
    """The worker's TLS settings for the spare node, with `overrides` (None removes one)."""
    env: dict[str, str | None] = {
        "RENEWALS_AMQP_CA_FILE": str(broker.ca_file),
        "RENEWALS_AMQP_CERT_FILE": str(broker.client_cert),
        "RENEWALS_AMQP_KEY_FILE": str(broker.client_key),
        **FAST_RETRIES,
        **overrides,
    }
    return {name: value for name, value in env.items() if value is not None}


def ops_url(broker: SpareTlsBroker) -> str:
    return broker.url.replace("guest:guest@", "ops:tls-s3cret@")


def test_the_worker_runs_over_tls_with_our_ca_and_client_certificate(
    tls_broker: SpareTlsBroker, start_worker: Callable[..., WorkerProcess]
) -> None:
    """Over amqps:// with RENEWALS_AMQP_CA_FILE and a client certificate and key, events become notifications and `renewals dlq list` reads the dead letter."""
    env = tls_env(tls_broker)
    worker = start_worker(ops_url(tls_broker), env)
    client = Client(tls_broker.tcp_url)
    out = client.observe()
    events = [renewal(f"tls-{n}", None, decision_maker=DORA, id=f"tls-evt-{n}") for n in range(200)]
    client.publish([*events, renewal("nobody", "p-none", id="tls-nobody")])
    expected = {event["id"] for event in events}
    result = audit(collect(client, out, expected, timeout=30), expected)
    assert (result["lost"], result["unexpected"], result["events_with_two_ids"]) == (0, 0, 0), result

    listed = json.loads(
        tls_broker.ctl("list_connections", "user", "ssl", "peer_cert_subject", "--formatter", "json")
    )
    worker_connections = [row for row in listed if row["user"] == "ops"]
    assert len(worker_connections) == 3, listed  # consuming, publishing, recording dead letters
    assert all(
        row["ssl"] and "renewals-test-client" in row["peer_cert_subject"] for row in worker_connections
    )
    store = {"RENEWALS_STORE_URL": worker.env["RENEWALS_STORE_URL"]}
    listing = wait_until(
        lambda: [
            row["id"]
            for row in json.loads(
                ok(renewals(ops_url(tls_broker), "dlq", "list", "--json", **env, **store)).stdout
            )
        ],
        "the dead letter recorded",
    )
    assert listing == ["tls-nobody"]
    assert "tls-s3cret" not in worker.log_path.read_text()
    client.close()
    assert worker.stop() == 0


@pytest.mark.parametrize(
    ("overrides", "why"),
    [
        ({"RENEWALS_AMQP_CA_FILE": None}, "certificate verify failed"),
        ({"RENEWALS_AMQP_SERVER_NAME": "elsewhere.example"}, "Hostname mismatch"),
    ],
    ids=["without-our-ca", "wrong-server-name"],
)
def test_a_worker_that_cannot_verify_the_broker_does_not_connect_and_says_why(
    tls_broker: SpareTlsBroker,
    start_worker: Callable[..., WorkerProcess],
    overrides: dict[str, str | None],
    why: str,
) -> None:
    """Without our CA, or expecting another server name, the worker never consumes, and logs the certificate error with the password masked; `renewals topology --declare` fails in one line saying the same."""
    url = ops_url(tls_broker)
    env = tls_env(tls_broker, **overrides)
    worker = start_worker(url, env, wait=False)
    lost = worker.wait_for("broker.connection_lost")[0]
    assert why in lost["error"] and "SSLCertVerificationError" in lost["error"], lost
    assert lost["broker"] == url.replace("tls-s3cret", "***"), lost
    assert not worker.find("worker.consuming") and worker.running()
    assert worker.stop(signal.SIGTERM, timeout=10) == 0
    assert "tls-s3cret" not in worker.log_path.read_text()

    result = renewals(url, "topology", "--declare", **env)
    assert result.exit_code == 1 and why in result.stderr and "tls-s3cret" not in result.output, result.output
