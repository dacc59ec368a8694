"""The Open Inference Protocol's error shape, `{"error": "<message>"}`, for the /v2 blueprint.

The rest of the API answers `{"error": {"code", "message", ...}}` (docs/api.md); OIP clients such as
tritonclient read `error` as a string, so this blueprint answers its own way.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify
from werkzeug.exceptions import HTTPException

from shared.errors import ApiError

# The protocol speaks of 400 (bad request) and 404 (unknown model); the API's finer 4xx codes
# for bad input become 400 here. Auth, size, rate limit and outage statuses keep their meaning.
_AS_BAD_REQUEST = frozenset({409, 415, 422})


def oip_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An OIP error answer."""
    resp = jsonify({"error": message})
    resp.status_code = 400 if status in _AS_BAD_REQUEST else status
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


def _api_error(err: ApiError) -> Response:
    return oip_error(err.status, _placed(err.message, err.details), err.headers)


def _placed(message: str, details: dict[str, Any] | None) -> str:
    """The message with the row and column the rows' checks name in `details` (the OIP error is
    one string, so they would otherwise be lost)."""
    if not details or "row" not in details:
        return message
    where = f"row {details['row']}"
    if "column" in details:
        where += f", column {details['column']!r}"
    return f"{message} ({where})"


def _http_error(err: HTTPException) -> Response:
    headers = {
        k: v for k, v in err.get_headers() if k.lower() not in ("content-type", "content-length")
    }
    return oip_error(err.code or 500, err.description or err.name, headers)


def _flatten(resp: Response) -> Response:
    """Errors answered by app-wide handlers (JWT failures, dependency outages, crashes) come in
    the API's error shape; give OIP clients the message string they expect."""
    if resp.status_code < 400 or not resp.is_json:
        return resp
    body = resp.get_json(silent=True)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        resp.set_data(jsonify({"error": error.get("message", "")}).get_data())
    return resp


def register_oip_errors(bp: Blueprint) -> None:
    """Blueprint handlers win over the app's for requests routed to this blueprint."""
    bp.register_error_handler(ApiError, _api_error)
    bp.register_error_handler(HTTPException, _http_error)
    bp.after_request(_flatten)
