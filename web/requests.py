"""Per-request hooks: request ids, body checks that come before any handler runs, and one
access-log line plus metrics for every answered request."""

from __future__ import annotations

import functools
import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from celery.signals import before_task_publish
from flask import Flask, Response, current_app, g, request
from flask.sessions import SessionInterface
from werkzeug.exceptions import BadRequest as UnreadableBody

from shared import logs
from shared.errors import BadRequest, ValidationFailed
from web import extensions, metrics
from web.openapi import spec

log = logging.getLogger("mlsp.request")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_NUL = b"\\u0000"  # how JSON spells U+0000 (a raw NUL byte is not valid JSON)
# OIP v2 clients send JSON with any (or no) content type, or JSON followed by binary tensors.
# The web pages (web/ui/) take HTML forms, checked by their own views (and CSRF tokens).
_OWN_BODY_FORMAT = frozenset({"oip", "ui", "ui_admin"})
# Probes and scrapes arrive every few seconds: their lines go to DEBUG, not INFO.
_QUIET_ENDPOINTS = frozenset({"metrics", "health.live", "health.ready"})
# A long-poll (`GET /jobs/{id}?wait=`) is slow on purpose: the client asked to wait.
_WAIT_ARG = "wait"


def _assign_request_id() -> None:
    g.started_at = time.monotonic()
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    # A pooled gthread thread starts each request with an empty context.
    logs.clear()
    logs.bind(request_id=g.request_id)


def _check_body() -> None:
    """A body the route cannot take is a 4xx here, before authentication and the view: malformed
    JSON or the wrong media type a 400, a JSON route's missing or non-object body a 422."""
    if request.method not in _BODY_METHODS:
        return
    takes = _declared_body(current_app.view_functions.get(request.endpoint))
    if takes == "form":
        return  # uploads: their route checks the content type and its own size limit
    # JSON bodies get the smaller MAX_BODY_MB limit (werkzeug answers 413 past it).
    request.max_content_length = extensions.settings().max_body_bytes
    if request.blueprint in _OWN_BODY_FORMAT:
        return
    if takes == "json":
        _require_json_object()
    elif request.mimetype or request.content_length:
        _read_json()  # a route that takes no body still refuses one it cannot read


@functools.cache
def _declared_body(view: Callable[..., Any] | None) -> str | None:
    """The body the view's spectree schema takes: form, json, or None for none (a route that
    spectree does not validate takes none here: OIP reads its own)."""
    metadata = spec.get_function_metadata(view) if view is not None else None
    if metadata is None:
        return None
    return "form" if metadata.form else "json" if metadata.json else None


def _require_json_object() -> None:
    # Left to spectree, a missing, empty or non-object body was validated as {} and a multipart
    # one not at all: the view got None, which an all-optional schema let through and a
    # required one crashed on (500).
    if not (request.mimetype or request.content_length) or not isinstance(_read_json(), dict):
        raise ValidationFailed("The request body must be a JSON object")


def _read_json() -> Any:
    """The parsed body (None when empty); 400 when it is not JSON."""
    if not request.is_json:
        raise BadRequest("Content-Type must be application/json", code="unsupported_content_type")
    if not request.get_data(cache=True):
        return None
    try:
        body = request.get_json()  # cached: spectree reads the same value, parsed once
    except UnreadableBody:
        raise BadRequest("Malformed JSON body", code="malformed_json") from None
    if _NUL in request.get_data(cache=True):
        # PostgreSQL text and JSONB cannot hold U+0000; refuse it here rather than fail later.
        raise ValidationFailed("Strings must not contain the NUL character", code="invalid_input")
    return body


def _echo_request_id(resp: Response) -> Response:
    resp.headers["X-Request-ID"] = g.get("request_id", "")
    return resp


def _route() -> str:
    # The URL rule (`/api/v1/jobs/<uuid:job_id>`), so ids never become metric labels.
    return request.url_rule.rule if request.url_rule is not None else "<unmatched>"


def _user_id() -> str | None:
    # Set at authentication: reading it off the user object could touch a failed session.
    return g.get("user_id")


def _level(duration_ms: float) -> int:
    if request.endpoint in _QUIET_ENDPOINTS:
        return logging.DEBUG
    slow = extensions.settings().slow_request_ms
    if duration_ms > slow and _WAIT_ARG not in request.args:
        return logging.WARNING
    return logging.INFO


def _log_and_count(resp: Response) -> Response:
    """One JSON line and the request metrics; never the body, the query string or headers."""
    seconds = time.monotonic() - g.get("started_at", time.monotonic())
    duration_ms = round(seconds * 1000, 3)
    route = _route()
    metrics.observe_request(request.method, route, resp.status_code, seconds)
    level = _level(duration_ms)
    fields = {
        "method": request.method,
        "path": request.path,
        "route": route,
        "status": resp.status_code,
        "duration_ms": duration_ms,
        "user_id": _user_id(),
        "request_id": g.get("request_id"),
        "remote_addr": request.remote_addr,
    }
    if level == logging.WARNING:
        fields["slow"] = True
    log.log(level, "%s %s %s", request.method, request.path, resp.status_code, extra=fields)
    return resp


def _forget_context(_exc: BaseException | None) -> None:
    logs.clear()


def _propagate_request_id(headers: dict | None = None, **_: object) -> None:
    """Every task sent while handling a request carries its id, so worker lines join web ones."""
    request_id = logs.current().get("request_id")
    if request_id and headers is not None:
        headers.setdefault("request_id", request_id)


class NoSessions(SessionInterface):
    """The API keeps no cookie session (tokens and keys come in headers): Flask's default would
    build a signing serializer and look for a cookie on every request for nothing."""

    def open_session(self, app: Flask, request: object) -> None:
        return None  # Flask then uses a NullSession, which is never saved

    def save_session(self, app: Flask, session: object, response: Response) -> None:
        return None


def register(app: Flask) -> None:
    app.session_interface = NoSessions()
    # First of all before-request hooks (flask-limiter registers one earlier), so that even a
    # request refused by another hook has an id, a start time and a log line.
    app.before_request_funcs.setdefault(None, []).insert(0, _assign_request_id)
    app.before_request(_check_body)
    app.after_request(_echo_request_id)
    app.after_request(_log_and_count)
    app.teardown_request(_forget_context)
    before_task_publish.connect(_propagate_request_id, dispatch_uid="mlsp-request-id", weak=False)
