"""py-amqp's private and undocumented names that the worker relies on, in one place, checked
once at import.

The reading path (`wire.py`) and the batched writes (`publisher.py`) are fast because they reach
under py-amqp's documented surface. A py-amqp release may rename or drop any of these without
a word, so importing this module checks that each still exists on the installed py-amqp and
raises ImportError naming the version and the missing name if not. pyproject declares the
range these were tested on; `tests/unit/test_amqp_private.py` pins the list.
"""

from importlib.metadata import version

import amqp
from amqp import basic_message, method_framing, serialization, transport

__all__ = [
    "PRIVATE_NAMES",
    "SET_BY_METHOD",
    "Message",
    "SSLTransport",
    "TCPTransport",
    "check",
    "decode_properties_basic",
    "default_frame_handler",
    "dumps",
    "missing",
]

TESTED = "amqp>=5.4,<5.5"  # pyproject's dependency: the range this list was checked on

# (where, name, what the worker does with it). Names without an underscore are here because
# they are undocumented internals all the same: py-amqp's docs do not promise them.
PRIVATE_NAMES: tuple[tuple[object, str, str], ...] = (
    (transport.TCPTransport, "_setup_transport", "wire.py: the buffered transports start their buffer here"),
    (transport.SSLTransport, "_setup_transport", "wire.py: the buffered transports start their buffer here"),
    (transport.SSLTransport, "_wrap_socket", "wire.py: TLS through the endpoint's ssl.SSLContext"),
    (transport.TCPTransport, "_read_buffer", "wire.py: py-amqp's own read buffer, emptied and left unused"),
    (transport.SSLTransport, "_read_buffer", "wire.py: py-amqp's own read buffer, emptied and left unused"),
    (transport.TCPTransport, "having_timeout", "wire.py: a frame read bounded by a socket timeout"),
    (transport.TCPTransport, "write", "publisher.py: a batch's frames written in one system call"),
    (amqp.Connection, "Transport", "wire.py: the hook that picks the buffered transport class"),
    (amqp.Connection, "blocking_read", "wire.py: overridden to parse buffered frames first"),
    (amqp.Connection, "on_inbound_frame", "wire.py: buffered frames handed to the frame handler"),
    (amqp.Connection, "bytes_recv", "wire.py: deliveries read count for py-amqp's heartbeat check"),
    (amqp.Connection, "bytes_sent", "publisher.py, wire.py: writes count for the heartbeat check"),
    (method_framing, "frame_handler", "wire.py: every frame but deliveries goes to py-amqp's handler"),
    (serialization, "decode_properties_basic", "wire.py: a delivery's properties decoded"),
    (serialization, "dumps", "publisher.py: method and property frames laid out, headers measured"),
    (basic_message.Message, "PROPERTIES", "publisher.py: the basic properties' names and AMQP types"),
)

# Attributes set on the instance by a method rather than declared on the class: (where, method,
# attribute). Checked in the method's code, as hasattr on the class cannot see them.
SET_BY_METHOD: tuple[tuple[type, str, str], ...] = (
    (transport.TCPTransport, "_setup_transport", "_quick_recv"),  # wire.py: the socket's recv, read in chunks
    (transport.SSLTransport, "_setup_transport", "_quick_recv"),  # wire.py: the TLS socket's read
)


def _owner(where: object) -> str:
    return str(getattr(where, "__qualname__", None) or getattr(where, "__name__", repr(where)))


def missing() -> list[str]:
    """Every private name of the lists above that the installed py-amqp lacks."""
    lacking = [f"{_owner(where)}.{name}" for where, name, _ in PRIVATE_NAMES if not hasattr(where, name)]
    for cls, method, attribute in SET_BY_METHOD:
        code = getattr(getattr(cls, method, None), "__code__", None)
        if code is None or attribute not in code.co_names:
            lacking.append(f"{cls.__qualname__}.{attribute} (set by {method})")
    return lacking


def check() -> None:
    """ImportError naming the installed py-amqp version and each missing name, if any."""
    lacking = missing()
    if lacking:
        raise ImportError(
            f"py-amqp {version('amqp')} lacks {', '.join(lacking)}, which the worker relies on;"
            f" install the tested range: pip install '{TESTED}'"
        )


check()

# The names the worker imports, bound once the check has passed.
TCPTransport = transport.TCPTransport
SSLTransport = transport.SSLTransport
Message = basic_message.Message
dumps = serialization.dumps
decode_properties_basic = serialization.decode_properties_basic
default_frame_handler = method_framing.frame_handler
