"""Domain errors, each mapped to one HTTP status and error code (docs/api.md, "Errors")."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """Base of every error that is answered to a client."""

    status = 500
    code = "internal_error"
    message = "Internal server error"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.code = code or self.code
        self.details = details
        self.headers = headers or {}


class BadRequest(ApiError):
    status, code, message = 400, "bad_request", "Malformed request"


class Unauthorized(ApiError):
    status, code, message = 401, "unauthorized", "Missing or invalid credentials"

    def __init__(self, message: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("WWW-Authenticate", "Bearer")


class Forbidden(ApiError):
    status, code, message = 403, "forbidden", "Not allowed"


class NotFound(ApiError):
    status, code, message = 404, "not_found", "Not found"


class Conflict(ApiError):
    status, code, message = 409, "conflict", "Conflict"


class PayloadTooLarge(ApiError):
    status, code, message = 413, "payload_too_large", "Request body too large"


class UnsupportedFormat(ApiError):
    status, code, message = 415, "unsupported_format", "Unsupported model file format"


class ValidationFailed(ApiError):
    status, code, message = 422, "validation_error", "Invalid input"


class TooManyRequests(ApiError):
    status, code, message = 429, "rate_limited", "Too many requests"

    def __init__(self, message: str | None = None, *, retry_after: int = 1, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", str(max(1, int(retry_after))))


class ServiceUnavailable(ApiError):
    status, code, message = 503, "service_unavailable", "A dependency is unavailable"

    def __init__(self, message: str | None = None, *, retry_after: int = 5, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.headers.setdefault("Retry-After", str(retry_after))
