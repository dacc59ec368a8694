"""One JSON error shape for every 4xx/5xx (docs/api.md, "Errors"), registered once on the app."""

from __future__ import annotations

import logging
from typing import Any

import redis
from flask import Flask, Response, g, jsonify
from kombu.exceptions import OperationalError as BrokerError
from pydantic import ValidationError
from spectree.model_adapter.pydantic_adapter import PydanticModelAdapter
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from shared.errors import ApiError, ServiceUnavailable, ValidationFailed
from web.extensions import db

log = logging.getLogger(__name__)

# Werkzeug's own exceptions keep their status; these give them snake_case codes.
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


def error_response(
    status: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """Build the error body of the API (docs/api.md, "Errors")."""
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    resp = jsonify({"error": body})
    resp.status_code = status
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def _api_error(err: ApiError) -> Response:
    return error_response(err.status, err.code, err.message, err.details, err.headers)


def _http_error(err: HTTPException) -> Response:
    status = err.code or 500
    code = _HTTP_CODES.get(status, "http_error")
    headers = {k: v for k, v in err.get_headers() if k.lower() not in ("content-type",)}
    headers.pop("Content-Length", None)
    return error_response(status, code, err.description or err.name, headers=headers)


def _dependency_down(err: Exception) -> Response:
    # An outage of PostgreSQL or Redis is the client's cue to retry later, not a server bug.
    log.warning("dependency unavailable: %s", type(err).__name__, extra={"error": str(err)[:200]})
    return _api_error(ServiceUnavailable("A dependency (database or broker) is unavailable"))


def _db_error(err: DBAPIError) -> Response:
    if err.connection_invalidated or isinstance(err, OperationalError):
        return _dependency_down(err)
    return _unhandled(err)


def _reset_session() -> None:
    """A failed statement leaves the request's session unusable: roll it back so the rest of the
    request (log line, metrics) can still read what it needs."""
    try:
        db.session.rollback()
    except Exception:  # the connection itself may be gone; the answer matters more
        log.debug("session rollback failed", exc_info=True)


def _unhandled(err: Exception) -> Response:
    log.exception("unhandled error", extra={"request_id": g.get("request_id")})
    _reset_session()
    return error_response(500, "internal_error", "Internal server error")


class InputFreeErrors(PydanticModelAdapter):
    """spectree's pydantic adapter, rendering a failed request's errors without the input values.
    spectree serialises them before `raise_validation_error` replaces its answer, and a form's
    input can hold an uploaded file, which JSON cannot: that was a 500 for any invalid upload."""

    def validation_errors(self, err: ValidationError) -> list[dict[str, Any]]:
        return err.errors(include_url=False, include_context=False, include_input=False)


def raise_validation_error(req, resp, err, instance, adapter) -> None:
    """spectree hook: a request that fails its schema is answered in the API's error shape (422)."""
    if err is None:
        return
    fields = [
        {"loc": ".".join(str(p) for p in e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in err.errors(include_url=False, include_input=False)
    ]
    raise ValidationFailed("Request validation failed", details={"errors": fields})


def register_error_handlers(app: Flask) -> None:
    """Every error, including Flask's own 404/405 and crashes, answers in the one shape."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _dependency_down)
    app.register_error_handler(PoolTimeout, _dependency_down)
    app.register_error_handler(DBAPIError, _db_error)
    app.register_error_handler(redis.ConnectionError, _dependency_down)
    app.register_error_handler(redis.TimeoutError, _dependency_down)
    app.register_error_handler(BrokerError, _dependency_down)
    app.register_error_handler(Exception, _unhandled)
