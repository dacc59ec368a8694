"""The cache epoch (shared/cache_epoch.py) as the web tier reads it: once per request, however
many caches ask (the API-key cache, the servable-model cache), or not at all on the hot
prediction routes, which assume the value their process saw last and have it checked where they
act (`assumed`, `expected`, `check`, `confirm`)."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import redis
from flask import current_app, g
from werkzeug.exceptions import HTTPException

from shared import cache_epoch
from shared.errors import ApiError
from web import extensions

F = TypeVar("F", bound=Callable[..., Any])

# The app's extensions hold the epoch it saw last. Threads may store out of order: an older
# value only costs the next prediction a retry.
_SEEN = "mlsp_cache_epoch_seen"


def current() -> bytes:
    if "cache_epoch" not in g:
        g.cache_epoch = _learn(cache_epoch.read(extensions.redis()))
    return g.cache_epoch


def assumed(view: F) -> F:
    """Decorator of the prediction routes, above `login_required`: cached keys and models are
    trusted under the epoch this process saw last, saving a Redis read. Their first effect checks
    it (`expected`, `check`); if it had moved, nothing has happened yet and the request is decided
    again, authentication included. So is one the route refused before its check when the epoch
    has moved meanwhile (a revoked key gets its 401, not an answer about the model). A refusal by
    authentication itself stands, as on any other route."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        assume()
        try:
            return view(*args, **kwargs)
        except cache_epoch.Stale as stale:
            found = stale.epoch
        except (ApiError, HTTPException):
            # No g.user: authentication refused the request (it sets g.user only once passed).
            if "user" not in g or (found := moved()) is None:
                raise
        restart(found)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def assume() -> None:
    """Take the epoch this process saw last instead of reading it. Only for a route that has it
    checked, atomically with its first effect, by `expected` or `check` (see `assumed`)."""
    seen = current_app.extensions.get(_SEEN)
    if seen is not None and "cache_epoch" not in g:
        g.cache_epoch = seen
        g.epoch_assumed = True


def expected() -> bytes | None:
    """The epoch this request assumed (for a script to compare), or None if it read it."""
    return g.cache_epoch if g.get("epoch_assumed") else None


def check(found: bytes) -> None:
    """`found` was just read along with the request's first effect: raise `Stale` if the
    request assumed another value."""
    _learn(found)
    if g.get("epoch_assumed") and found != g.cache_epoch:
        raise cache_epoch.Stale(found)
    confirm()


def confirm() -> None:
    """The assumed epoch passed its check: what the request does next may rest on it."""
    g.epoch_confirmed = True


def moved() -> bytes | None:
    """For a request refused before its check: the current epoch if it differs from the one
    assumed (the refusal may rest on stale cache entries), else None."""
    if not g.get("epoch_assumed") or g.get("epoch_confirmed"):
        return None
    try:
        found = _learn(cache_epoch.read(extensions.redis()))
    except redis.RedisError:
        return None  # the refusal stands; Redis being down is reported by the next call
    return None if found == g.cache_epoch else found


def restart(found: bytes) -> None:
    """After `Stale`: the request is decided again under the epoch the check read."""
    _learn(found)
    g.cache_epoch = found
    g.epoch_assumed = False


def bump() -> None:
    """Invalidate every process's cached entries (call after the change is committed)."""
    _learn(cache_epoch.bump(extensions.redis()))
    g.pop("cache_epoch", None)
    g.pop("epoch_assumed", None)


def _learn(value: bytes) -> bytes:
    current_app.extensions[_SEEN] = value
    return value
