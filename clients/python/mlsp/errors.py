"""Typed errors of the SDK, each carrying the error code the API answered."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any


class MlspError(Exception):
    """Base error: `status` (HTTP, 0 when no answer), `code`, `message` and `details`."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "error",
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details or {}
        self.headers = headers or {}

    def __str__(self) -> str:
        prefix = f"{self.status} " if self.status else ""
        return f"{prefix}{self.code}: {self.message}"


class AuthError(MlspError):
    """401 (missing, invalid, expired or revoked credentials) or 403 (not allowed)."""


class NotFound(MlspError):
    """404: the resource does not exist or belongs to someone else."""


class Conflict(MlspError):
    """409: duplicate, finished job, reused idempotency key, model not ready."""


class ValidationError(MlspError):
    """400, 413, 415 or 422: the request or its inputs were refused."""


class RateLimited(MlspError):
    """429 (rate limit or queue full) after the client's retries ran out."""

    @property
    def retry_after(self) -> float | None:
        return parse_retry_after(self.headers.get("Retry-After"))


class Unavailable(MlspError):
    """503 (a dependency is down) after the client's retries ran out, or no answer at all."""


class ServerError(MlspError):
    """Any other 5xx."""


class JobFailed(MlspError):
    """A job ended `failed`, `cancelled` or `expired`; `job` is the finished job."""

    def __init__(self, job: Any) -> None:
        error = job.error or {}
        super().__init__(
            error.get("message") or f"job {job.id} {job.status}",
            code=error.get("code") or f"job_{job.status}",
        )
        self.job = job


class JobTimeout(MlspError):
    """A job did not finish within the time the caller allowed; `job` is still running."""

    def __init__(self, job: Any, seconds: float) -> None:
        super().__init__(f"job {job.id} not finished after {seconds:g}s", code="timeout")
        self.job = job


class BatchFailed(JobFailed):
    """A batch ended `failed` or `cancelled`; `batch` (also `job`) is the finished batch."""

    def __init__(self, batch: Any) -> None:
        MlspError.__init__(
            self, batch.error or f"batch {batch.id} {batch.status}", code=f"batch_{batch.status}"
        )
        self.job = self.batch = batch


class BatchTimeout(JobTimeout):
    """A batch did not finish within the time the caller allowed; `batch` is still going."""

    def __init__(self, batch: Any, seconds: float) -> None:
        message = f"batch {batch.id} not finished after {seconds:g}s"
        MlspError.__init__(self, message, code="timeout")
        self.job = self.batch = batch


_BY_STATUS: dict[int, type[MlspError]] = {
    400: ValidationError,
    401: AuthError,
    403: AuthError,
    404: NotFound,
    409: Conflict,
    413: ValidationError,
    415: ValidationError,
    422: ValidationError,
    429: RateLimited,
    503: Unavailable,
}


def error_for(status: int, body: Any, headers: dict[str, str], text: str = "") -> MlspError:
    """The typed error of an HTTP answer with the API's error body (or anything else)."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        code = str(error.get("code") or f"http_{status}")
        message = str(error.get("message") or "")
        details = error.get("details") if isinstance(error.get("details"), dict) else None
    else:  # not our API's shape (a proxy's page, the OIP's string error)
        code, message, details = f"http_{status}", str(error or text[:200] or status), None
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else MlspError)
    return cls(message, status=status, code=code, details=details, headers=dict(headers))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())
