"""structlog set-up: JSON lines when not on a TTY, readable when a person is watching.

Lines logged inside `held()` (the worker holds them while it reports a batch) are written
with one write and one flush at the end of the block, not one system call per line.
"""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

import structlog

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class _Lines:
    """A structlog logger that writes rendered lines to a stream, or holds them for a while."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._held: list[str] | None = None

    def msg(self, message: str) -> None:
        if self._held is not None:
            self._held.append(message)
            return
        self._stream.write(message + "\n")
        self._stream.flush()

    debug = info = warning = error = critical = exception = msg

    @contextmanager
    def held(self) -> Iterator[None]:
        self._held = []
        try:
            yield
        finally:
            lines, self._held = self._held, None
            if lines:
                self._stream.write("\n".join(lines) + "\n")
                self._stream.flush()


_lines = _Lines(sys.stderr)


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog once, at start-up."""
    global _lines
    _lines = _Lines(sys.stderr)
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *_: _lines,
        cache_logger_on_first_use=True,
    )


def held() -> Any:
    """Hold log lines until the block ends, then write them at once."""
    return _lines.held()


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
