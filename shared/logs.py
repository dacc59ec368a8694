"""Structured logging for every process: one JSON object per line (or plain text), with the
request id, task id and job fields of whatever is being handled attached to each record.

Web and workers both call `configure_logging`; what is being handled is bound with `bind()`
(a context variable, so the web server's threads and Celery's tasks never see each other's ids).
Nothing here imports Flask or Celery, so the web server's master can load the formatter too.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import queue
import sys
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from logging.handlers import QueueHandler, QueueListener
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


def _context_of(record: logging.LogRecord) -> Mapping[str, Any]:
    """The fields bound where the record was made: carried by the record when another thread
    writes it (`_HandOff`), else this context's."""
    return getattr(record, "_context", None) or current()


def _traceback(record: logging.LogRecord) -> str | None:
    if record.exc_info:
        return "".join(traceback.format_exception(*record.exc_info)).rstrip()
    return record.exc_text  # formatted before a hand-off to the writer thread


class _HandOff(QueueHandler):
    """Puts records on the writer thread's queue with what formatting needs from the thread
    that made them: the message with its arguments, the traceback as text, and the bound
    context (a context variable, which the writer thread does not see)."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record = copy.copy(record)  # other handlers (pytest's caplog) keep the original
        record.msg, record.args = record.getMessage(), None
        record.exc_text, record.exc_info = _traceback(record), None
        record._context = current()
        return record


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, bound context and extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **_context_of(record),
            **_extras(record),
        }
        if exc := _traceback(record):
            entry["exc"] = exc
        # orjson: a third of json.dumps's time on a request line; UTF-8 as is, like
        # ensure_ascii=False. Anything it cannot encode (and a non-str key) goes through str.
        return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


class TextFormatter(logging.Formatter):
    """Human-readable lines for development; the same fields follow as key=value pairs."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        fields = {**_context_of(record), **_extras(record)}
        record.context = "".join(f" {k}={v}" for k, v in fields.items() if k != "context")
        return super().format(record)


def make_formatter(fmt: str) -> logging.Formatter:
    """`json` (default) or `text` (LOG_FORMAT)."""
    return TextFormatter() if fmt == "text" else JsonFormatter()


def configure_logging(
    level: str = "INFO", fmt: str = "json", *, writer_thread: bool = False
) -> None:
    """Route the root logger to stderr through our formatter; safe to call more than once
    (an app factory called per test replaces its handler instead of stacking another).

    `writer_thread`: records are formatted and written by a thread of their own (for the web's
    request threads): a request thread only queues its line. Otherwise the request threads
    took turns on the handler's lock around each write (py-spy of a web process at 16
    connections: three quarters of its time in logging was waiting for that lock)."""
    # What neither formatter prints, every record would otherwise look up: the caller's file and
    # line (a walk up the stack), thread and process names (the optimisations the logging HOWTO
    # lists). A third of the cost of each request's line.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(handler)
    _stop_writer()
    handler: logging.Handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(make_formatter(fmt))
    if writer_thread:
        handler = _start_writer(handler)
    handler.set_name(_HANDLER_NAME)
    root.addHandler(handler)
    root.setLevel(level.upper())


_writer: QueueListener | None = None


def _start_writer(handler: logging.Handler) -> logging.Handler:
    global _writer
    _writer = QueueListener(queue.SimpleQueue(), handler)
    _writer.start()
    return _HandOff(_writer.queue)


def _stop_writer() -> None:
    """Write what is queued and end the writer thread (at exit, or before a new one)."""
    global _writer
    if _writer is not None:
        _writer.stop()
        _writer = None


def _writer_in_child() -> None:
    """A forked child has the queue but not the thread: start one of its own."""
    global _writer
    if _writer is not None:
        _writer = QueueListener(_writer.queue, *_writer.handlers)
        _writer.start()


atexit.register(_stop_writer)
os.register_at_fork(after_in_child=_writer_in_child)
