"""Per-request hooks: request ids, body checks that come before any handler runs."""

from __future__ import annotations

import re
import time
import uuid

from flask import Flask, Response, current_app, g, request

from shared.errors import BadRequest

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _assign_request_id() -> None:
    g.started_at = time.monotonic()
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex


def _check_json_body() -> None:
    """Malformed JSON or a body that is not JSON is a 400, before validation turns it into 422."""
    if request.method not in _BODY_METHODS or request.mimetype == "multipart/form-data":
        return  # uploads: their route checks the content type and its own size limit
    # JSON bodies get the smaller MAX_BODY_MB limit (werkzeug answers 413 past it).
    request.max_content_length = current_app.extensions["mlsp_settings"].max_body_bytes
    if not request.mimetype and not request.content_length:
        return  # no body at all: the route's schema decides whether that is enough
    if not request.is_json:
        raise BadRequest("Content-Type must be application/json", code="unsupported_content_type")
    if request.content_length and request.get_json(silent=True) is None:
        raise BadRequest("Malformed JSON body", code="malformed_json")


def _echo_request_id(resp: Response) -> Response:
    resp.headers["X-Request-ID"] = g.get("request_id", "")
    return resp


def register(app: Flask) -> None:
    app.before_request(_assign_request_id)
    app.before_request(_check_json_body)
    app.after_request(_echo_request_id)
