"""The broker layer's one root: every error `worker.broker` raises of its own is a BrokerError."""


class BrokerError(Exception):
    """Something about the broker or talking to it; the subclass says what."""
