"""structlog set-up: JSON lines when not on a TTY, readable when a person is watching.

The canonical lines of a batch (one per message) go through `canonical()`: written with one
write and one flush, and, in JSON, rendered straight with orjson (the same keys as structlog's
JSON lines, one timestamp for the batch), which costs a quarter of the general pipeline.
"""

import json
import logging
import sys
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import FilteringBoundLogger, Processor

Logger = FilteringBoundLogger
"""What `get_logger` returns: structlog's bound logger, filtered by the configured level."""

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

    def write(self, text: str) -> None:
        """Already rendered lines, written (and flushed) in one go."""
        self._stream.write(text)
        self._stream.flush()

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
_fast_json = False
_threshold = logging.INFO
_processors: list[Processor] = []
_extra: list[Processor] = []


def configure(level: str = "info", fmt: str = "auto") -> None:
    """Configure structlog once, at start-up."""
    global _lines, _fast_json, _threshold, _processors
    _lines = _Lines(sys.stderr)
    console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    _fast_json, _threshold = not console, _LEVELS[level]
    renderer: Any = structlog.dev.ConsoleRenderer() if console else structlog.processors.JSONRenderer()
    _processors = [
        structlog.contextvars.merge_contextvars,
        *_extra,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        renderer,
    ]
    structlog.configure(
        processors=_processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=lambda *_: _lines,
        cache_logger_on_first_use=True,
    )


def include(processor: Processor) -> None:
    """Add a processor to every line from now on, loggers already in use included (tracing
    adds the current span's `trace_id` and `span_id` so)."""
    if processor in _extra:
        return
    _extra.append(processor)
    _processors.insert(1, processor)  # the list structlog's loggers hold: they see it at once


def held() -> AbstractContextManager[None]:
    """Hold log lines until the block ends, then write them at once."""
    return _lines.held()


def canonical(log: Logger, lines: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
    """Write a batch's lines, each (level, event name, fields), at once."""
    if not _fast_json:
        with held():
            for level, event, fields in lines:
                getattr(log, level)(event, **fields)
        return
    stamp = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    rendered = [
        _json_line({**fields, "event": event, "level": level, "timestamp": stamp})
        for level, event, fields in lines
        if _LEVELS[level] >= _threshold
    ]
    if rendered:
        _lines.write("\n".join(rendered) + "\n")


def _json_line(record: dict[str, Any]) -> str:
    """One JSON line, ASCII only as structlog's renderer writes it (a raw U+2028 or U+0085 would
    end the line for many readers); orjson for the common all-ASCII case."""
    line = orjson.dumps(record, default=str)
    return line.decode() if line.isascii() else json.dumps(record, default=str)


def get_logger(name: str) -> Logger:
    logger: Logger = structlog.get_logger(name)
    return logger
