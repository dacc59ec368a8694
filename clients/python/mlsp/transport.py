"""HTTP to the API: one `requests.Session` (connections reused), credentials, typed errors, and
bounded retries of 429/503 answers that honour `Retry-After`."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from mlsp.errors import MlspError, Unavailable, error_for, parse_retry_after

API_PREFIX = "/api/v1"
# "Come back later" answers: nothing was done, so asking again is safe for every method.
RETRY_STATUSES = frozenset({429, 503})
# Where a lost connection may be retried (the request may or may not have arrived).
_SAFE_METHODS = frozenset({"GET", "HEAD", "PATCH", "PUT", "DELETE"})
MIN_RETRY_WAIT = 0.25


def normalise_url(url: str) -> str:
    """The server root: `http://host:8000`, `.../` and `.../api/v1` all mean the same."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url.removesuffix(API_PREFIX)


class Transport:
    """Sends requests to one server with one set of credentials."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        token: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        pool_size: int = 16,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = normalise_url(url)
        self.api_key, self.token = api_key, token
        self.timeout = timeout
        self.max_retries, self.max_retry_wait = max_retries, max_retry_wait
        self.sleep = sleep  # replaceable, e.g. to observe retries
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["User-Agent"] = "mlsp-python"

    def _auth_headers(self) -> dict[str, str]:
        if self.api_key:
            return {"X-API-Key": self.api_key}
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {}

    def request(
        self, method: str, path: str, *, timeout: float | None = None, **kwargs: Any
    ) -> requests.Response:
        """Send `method path` (relative to /api/v1) and return the 2xx answer; raise a typed
        error otherwise, after retrying 429/503 answers up to `max_retries` times."""
        headers = {**self._auth_headers(), **(kwargs.pop("headers", None) or {})}
        url = self.url + (path if path.startswith("/v2") else API_PREFIX + path)
        safe = method in _SAFE_METHODS or "Idempotency-Key" in headers
        for attempt in range(self.max_retries + 1):
            _rewind(kwargs.get("files"), kwargs.get("data"))
            try:
                resp = self.session.request(
                    method, url, headers=headers, timeout=timeout or self.timeout, **kwargs
                )
            except requests.ConnectionError as exc:
                if not safe or attempt == self.max_retries:
                    message = f"cannot reach {self.url}: {exc}"
                    raise Unavailable(message, code="unreachable") from exc
                self.sleep(self._backoff(attempt))
                continue
            except requests.Timeout as exc:
                raise MlspError(f"no answer from {self.url} in time", code="timeout") from exc
            if resp.status_code < 400:
                return resp
            delay = self._retry_delay(resp, attempt)
            if delay is None:
                raise _error(resp)
            self.sleep(delay)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _retry_delay(self, resp: requests.Response, attempt: int) -> float | None:
        """Seconds to wait before asking again, or None to give up now."""
        if resp.status_code not in RETRY_STATUSES or attempt >= self.max_retries:
            return None
        asked = parse_retry_after(resp.headers.get("Retry-After"))
        if asked is None:
            return self._backoff(attempt)
        # A server asking for more patience than we may spend: fail now rather than later.
        if asked > self.max_retry_wait:
            return None
        # "Retry-After: 0" (a window about to reset, rounded down) must not become a busy loop.
        return max(asked, MIN_RETRY_WAIT)

    def _backoff(self, attempt: int) -> float:
        # Exponential with jitter, so that many clients do not come back in step.
        return min(self.max_retry_wait, 0.5 * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311

    def close(self) -> None:
        self.session.close()


def _rewind(files: dict[str, Any] | None, data: Any = None) -> None:
    """A retried upload sends the file (or a streamed body) again from its start."""
    handles = [value[1] if isinstance(value, tuple) else value for value in (files or {}).values()]
    for handle in [*handles, data]:
        if hasattr(handle, "seek"):
            handle.seek(0)


def _error(resp: requests.Response) -> MlspError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    return error_for(resp.status_code, body, dict(resp.headers), resp.text)
