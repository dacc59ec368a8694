"""Rate limits (flask-limiter, Redis storage): per user on predictions and uploads, per IP on
auth and the detailed health report."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_limiter import Limiter
from limits import RateLimitItem

from shared import quotas
from shared.config import Settings
from shared.errors import TooManyRequests
from shared.quotas import Quota, QuotaSpent
from shared.redis_client import PREFIX, limiter_storage
from web import extensions


def client_ip() -> str:
    # Behind a proxy, FORWARDED_ALLOW_IPS names it, so remote_addr is the client's (web/__init__).
    return request.remote_addr or "unknown"


def caller_key() -> str:
    """The authenticated user (limits are checked after authentication), else the client IP."""
    user = g.get("user")
    return f"user:{user.id}" if user is not None else f"ip:{client_ip()}"


limiter = Limiter(
    key_func=client_ip,
    headers_enabled=True,
    key_prefix=PREFIX.rstrip(":"),
    strategy="sliding-window-counter",
)


def predict_limit() -> str:
    return extensions.settings().rate_limit_predict


def auth_limit() -> str:
    return extensions.settings().rate_limit_auth


def upload_limit() -> str:
    return extensions.settings().rate_limit_upload


def health_limit() -> str:
    return extensions.settings().rate_limit_health


def limits_off() -> bool:
    """RATE_LIMIT_ENABLED is read per app: the limiter object is shared by every app in the
    process (tests build several), so its own on/off switch would leak between them."""
    return not extensions.settings().rate_limit_enabled


# The views `limit` decorates, by qualified name (module and name, which every functools.wraps
# layer above it keeps): how flask-limiter itself recognises a view.
_LIMITED_VIEWS: set[str] = set()


def _qualified_name(view: Callable) -> str:
    return f"{view.__module__}.{view.__name__}"


def unlimited() -> bool:
    """Whether flask-limiter has nothing to count for this request: limits off, or a route
    without a `limit` (there are no application-wide limits; predictions count their quota in
    the script that queues them). flask-limiter would otherwise resolve the route's limits,
    blueprint and exemptions on every request only to find none: ~80 µs of each sync predict
    (cProfile of the in-process app, bench/request_cpu.py)."""
    if limits_off():
        return True
    view = current_app.view_functions.get(request.endpoint or "")
    return view is None or _qualified_name(view) not in _LIMITED_VIEWS


limiter.request_filter(unlimited)


def limit(value: Callable[[], str], **options: Any) -> Callable:
    """flask-limiter's `limit`, not even consulted when the app has limits off.

    Off, flask-limiter would still identify the request, resolve every limit of the route and
    only then find them exempt: ~9% of the web's Python time per sync prediction (py-spy).
    Off is a real deployment (an API gateway doing the limiting), so it costs nothing here."""

    def decorate(view: Callable) -> Callable:
        _LIMITED_VIEWS.add(_qualified_name(view))
        limited = limiter.limit(value, **options)(view)

        @wraps(view)  # the same qualified name, which is how flask-limiter finds its limits
        def route(*args: Any, **kwargs: Any) -> Any:
            return view(*args, **kwargs) if limits_off() else limited(*args, **kwargs)

        return route

    return decorate


def predict_quota() -> Quota:
    """The caller's prediction quota (RATE_LIMIT_PREDICT, per user), for the script that admits
    its job to count (shared/quotas.py): no round trip of its own. Empty with limits off."""
    if limits_off():
        return Quota()
    return quotas.quota(caller_key(), _items(predict_limit()), time.time())


@functools.lru_cache(maxsize=8)
def _items(limits: str) -> list[RateLimitItem]:
    return quotas.parse(limits)


def counted(quota: Quota) -> None:
    """Report the quota's state in this answer's X-RateLimit headers."""
    if quota.state is not None:
        g.quota_state = quota.state


def quota_spent(spent: QuotaSpent) -> TooManyRequests:
    """The 429 of a spent prediction quota (its X-RateLimit headers come from `counted`)."""
    g.quota_state = spent.state
    retry = spent.state.retry_after(time.time())
    return TooManyRequests(
        f"Rate limit of {spent.state.limit} predictions reached; retry in {retry} s",
        retry_after=retry,
    )


def _quota_headers(response: Response) -> Response:
    state = g.get("quota_state")
    if state is not None:
        response.headers["X-RateLimit-Limit"] = str(state.limit)
        response.headers["X-RateLimit-Remaining"] = str(state.remaining)
        response.headers["X-RateLimit-Reset"] = str(state.reset_at)
    return response


def _retry_after_only_on_refusals(response: Response) -> Response:
    """flask-limiter sets Retry-After on every answer of a limited route (the window's reset):
    on the 202 of an accepted job, clients that honour it, as the usual polling pattern does,
    would wait a minute before their first poll. Only a refusal asks the client to wait."""
    if response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


def register_limiter(app: Flask, settings: Settings) -> None:
    if not settings.rate_limit_enabled:
        return  # no hooks on this app: its routes bypass the limiter (`limit`)
    # Registered before the limiter's own after_request hook, so it runs after it (Flask runs
    # them in reverse order) and sees the headers the limiter added.
    app.after_request(_retry_after_only_on_refusals)
    app.after_request(_quota_headers)
    uri, options = limiter_storage(settings.redis_url)  # plain Redis, or behind Sentinel
    app.config["RATELIMIT_STORAGE_URI"] = uri
    # A Redis outage must not take the API down with it: limits are then not enforced.
    app.config["RATELIMIT_SWALLOW_ERRORS"] = True
    app.config["RATELIMIT_STORAGE_OPTIONS"] = {
        "socket_connect_timeout": 2,
        "socket_timeout": 2,
        **options,
    }
    limiter.init_app(app)
