"""The tools' one root: every error `worker.tools` raises of its own is a ToolError."""


class ToolError(Exception):
    """Something an operator's tool could not do; the subclass says what."""
