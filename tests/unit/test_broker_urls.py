"""A broker URL is read as kombu's `url_to_parts` read it, before kombu was dropped: the same
hosts, ports, credentials and vhosts, and the same refusals."""

import re

import pytest

from worker.broker.endpoints import Broker, Endpoint


@pytest.mark.parametrize(
    ("url", "read"),
    [
        ("amqp://", ("localhost", 5672, "guest", "guest", "/", False)),
        ("amqp://h", ("h", 5672, "guest", "guest", "/", False)),
        ("amqp://h/", ("h", 5672, "guest", "guest", "/", False)),
        ("amqp://h//", ("h", 5672, "guest", "guest", "/", False)),
        ("amqp://h/%2F", ("h", 5672, "guest", "guest", "/", False)),
        ("amqp://u:p@h:5673/vh", ("h", 5673, "u", "p", "vh", False)),
        ("amqps://u:p%40x@h/v%2Fh", ("h", 5671, "u", "p@x", "v/h", True)),
        ("amqp://u@h/vh?x=1", ("h", 5672, "u", "guest", "vh", False)),
        ("amqp://h/a/b", ("h", 5672, "guest", "guest", "a/b", False)),
        ("amqp://[::1]:5672/v", ("::1", 5672, "guest", "guest", "v", False)),
    ],
)
def test_a_url_reads_as_kombu_read_it(url: str, read: tuple[object, ...]) -> None:
    """Percent-escapes undone, the first `/` of the path dropped, defaults for what is missing."""
    endpoint = Endpoint.parse(url)
    assert (
        endpoint.host,
        endpoint.port,
        endpoint.user,
        endpoint.password,
        endpoint.vhost,
        endpoint.tls,
    ) == read


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://h/", "the scheme must be amqp:// or amqps://"),
        ("amqp://u:s3cret@h:abc/", "not a valid URL (percent-encode / ? # @ in a password)"),
        ("amqp://h:99999/", "not a valid URL (percent-encode / ? # @ in a password)"),
    ],
)
def test_an_unreadable_url_is_refused_without_its_password(url: str, why: str) -> None:
    """The refusal says what is wrong and never quotes the password."""
    with pytest.raises(ValueError, match=re.escape(why)) as refused:
        Endpoint.parse(url)
    assert "s3cret" not in str(refused.value)


def test_a_node_list_is_split_on_semicolons() -> None:
    """`amqp://a/vh;amqp://b/vh` is two nodes, in order."""
    broker = Broker.from_urls("amqp://a/vh; amqp://b:5673/vh")
    assert [(node.host, node.port, node.vhost) for node in broker.endpoints] == [
        ("a", 5672, "vh"),
        ("b", 5673, "vh"),
    ]
