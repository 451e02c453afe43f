"""The py-amqp internals the worker relies on are one pinned list, checked at import."""

import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest
from amqp.transport import SSLTransport, TCPTransport

from worker.broker import amqp_private


def test_the_private_names_are_the_pinned_list() -> None:
    """Adding or dropping a py-amqp internal is a visible change to this list, not a silent one."""
    names = {f"{amqp_private._owner(where)}.{name}" for where, name, _ in amqp_private.PRIVATE_NAMES}
    names |= {f"{cls.__qualname__}.{attribute}" for cls, _, attribute in amqp_private.SET_BY_METHOD}
    assert names == {
        "TCPTransport._setup_transport",
        "SSLTransport._setup_transport",
        "SSLTransport._wrap_socket",
        "TCPTransport._read_buffer",
        "SSLTransport._read_buffer",
        "TCPTransport._quick_recv",
        "SSLTransport._quick_recv",
        "TCPTransport.having_timeout",
        "TCPTransport.write",
        "Connection.Transport",
        "Connection.blocking_read",
        "Connection.on_inbound_frame",
        "Connection.bytes_recv",
        "Connection.bytes_sent",
        "amqp.method_framing.frame_handler",
        "amqp.serialization.decode_properties_basic",
        "amqp.serialization.dumps",
        "Message.PROPERTIES",
    }


def test_the_installed_py_amqp_has_every_name() -> None:
    """The installed py-amqp, in the declared range, passes the check."""
    assert amqp_private.missing() == []
    amqp_private.check()


def test_a_missing_name_fails_loudly_naming_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    """A py-amqp without `_wrap_socket` makes the check raise ImportError naming the installed
    version, the missing name and the range to install."""
    monkeypatch.delattr(SSLTransport, "_wrap_socket")
    with pytest.raises(ImportError) as raised:
        amqp_private.check()
    text = str(raised.value)
    assert f"py-amqp {version('amqp')}" in text
    assert "SSLTransport._wrap_socket" in text
    assert "amqp>=5.4,<5.5" in text


def test_an_attribute_no_longer_set_by_its_method_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    """A `_setup_transport` that no longer sets `_quick_recv` is caught, though hasattr on the
    class could never see that attribute."""

    def _setup_transport(self: object) -> None:
        pass

    monkeypatch.setattr(TCPTransport, "_setup_transport", _setup_transport)
    assert amqp_private.missing() == ["TCPTransport._quick_recv (set by _setup_transport)"]
    with pytest.raises(ImportError, match=r"TCPTransport\._quick_recv"):
        amqp_private.check()


def test_the_tested_range_is_the_declared_dependency() -> None:
    """The range the check names is the one pyproject.toml declares for amqp."""
    project = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert amqp_private.TESTED in project["project"]["dependencies"]
