"""Structured logging for every process: one JSON object per line (or plain text), with the
request id, task id and job fields of whatever is being handled attached to each record.

Web and workers both call `configure_logging`; what is being handled is bound with `bind()`
(a context variable, so the web server's threads and Celery's tasks never see each other's ids).
Nothing here imports Flask or Celery, so the web server's master can load the formatter too.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import Any

import orjson

_context: ContextVar[Mapping[str, Any]] = ContextVar("mlsp_log_context", default={})  # noqa: B039 - never mutated

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime"}
)
_HANDLER_NAME = "mlsp"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"


def bind(**fields: Any) -> Token:
    """Attach fields (request_id, task_id, ...) to every record logged in this context."""
    return _context.set({**_context.get(), **fields})


def reset(token: Token) -> None:
    """Undo a `bind` (at the end of a request or task)."""
    _context.reset(token)


def clear() -> None:
    """Forget every bound field (a pooled thread starting fresh)."""
    _context.set({})


def current() -> Mapping[str, Any]:
    """The fields bound in this context."""
    return _context.get()


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    token = bind(**fields)
    try:
        yield
    finally:
        reset(token)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, bound context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **current(),
            **_extras(record),
        }
        if record.exc_info:
            entry["exc"] = "".join(traceback.format_exception(*record.exc_info)).rstrip()
        # orjson: a third of json.dumps's time on a request line; UTF-8 as is, like
        # ensure_ascii=False. Anything it cannot encode (and a non-str key) goes through str.
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for development; the same fields follow as key=value pairs."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        fields = {**current(), **_extras(record)}
        record.context = "".join(f" {k}={v}" for k, v in fields.items() if k != "context")
        return super().format(record)


def make_formatter(fmt: str) -> logging.Formatter:
    """`json` (default) or `text` (LOG_FORMAT)."""
    return TextFormatter() if fmt == "text" else JsonFormatter()


def configure_logging(level: str = "INFO", fmt: str = "json") -> None:
    """Route the root logger to stderr through our formatter; safe to call more than once
    (an app factory called per test replaces its handler instead of stacking another)."""
    # What neither formatter prints, every record would otherwise look up: the caller's file and
    # line (a walk up the stack), thread and process names (the optimisations the logging HOWTO
    # lists). A third of the cost of each request's line.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(make_formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level.upper())
