"""The broker side of a replay: a short-lived connection through the worker's own broker layer
(the same URL lists, TLS settings and publisher confirms) that republishes one letter at a
time and says whether the broker took it."""

from typing import Any

from amqp.exceptions import AMQPError

from worker.broker.endpoints import Broker
from worker.broker.publisher import ConfirmingPublisher
from worker.logs import Logger
from worker.messaging import Outgoing, PublishFailed
from worker.tools.connection import ToolConnection
from worker.tools.errors import ToolError

CONFIRM_TIMEOUT = 15.0
AMQP_SHORT_STRING = 255  # bytes: the longest exchange name or routing key AMQP can carry


class DeadLetterError(ToolError):
    """Something an operator must hear about, in one line."""


class ReplayRefused(ToolError):
    """The broker did not take a republished message (unroutable, nacked, no such exchange),
    or it could not be sent at all (a name AMQP cannot carry): this one letter failed."""


class ReplayPublisher(ToolConnection):
    """`with ReplayPublisher(broker, log=log) as publisher:` connects; leaving disconnects."""

    unreachable = DeadLetterError

    def __init__(self, broker: Broker, *, log: Logger) -> None:
        super().__init__(broker)
        self._log = log
        self._publisher: ConfirmingPublisher | None = None

    def republish(self, exchange: str, routing_key: str, body: bytes, properties: dict[str, Any]) -> None:
        """Publish with `mandatory` and wait for the broker's confirm; ReplayRefused otherwise."""
        assert self._connection is not None, "use ReplayPublisher in a with block"
        for what, name in (("exchange name", exchange), ("routing key", routing_key)):
            size = len(name.encode("utf-8", "surrogatepass"))
            if size > AMQP_SHORT_STRING:
                raise ReplayRefused(f"{what} is {size} bytes, over AMQP's {AMQP_SHORT_STRING}")
        if self._publisher is None:
            self._publisher = ConfirmingPublisher(
                self._connection, confirm_timeout=CONFIRM_TIMEOUT, log=self._log
            )
        try:
            self._publisher.publish([Outgoing(exchange, routing_key, body, _amqp_names(properties))])
        except PublishFailed as exc:
            raise ReplayRefused(str(exc)) from None
        except AMQPError as exc:  # the channel was closed by the broker (no such exchange, say)
            self._publisher = None
            raise ReplayRefused(
                f"{getattr(exc, 'reply_code', '')} {getattr(exc, 'reply_text', exc)}".strip()
            ) from None
        except (ValueError, TypeError, OverflowError, UnicodeError) as exc:  # a value AMQP cannot encode
            raise ReplayRefused(f"cannot be encoded: {type(exc).__name__}: {exc}") from None


def _amqp_names(properties: dict[str, Any]) -> dict[str, Any]:
    """The specification's property names (what DeadLetter speaks) as py-amqp's (`headers` is
    its `application_headers`)."""
    converted = {name: value for name, value in properties.items() if name != "headers" and value is not None}
    if properties.get("headers") is not None:
        converted["application_headers"] = properties["headers"]
    return converted
