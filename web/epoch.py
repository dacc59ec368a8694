"""One Redis counter that in-process caches of access-relevant rows are checked against.

The hot path caches what it resolved (API keys, servable models) per process. Any change that
could revoke access or stop a model serving (a key patched or deleted, an account disabled, a
model patched or deleted) bumps this counter, and an entry is only used while the counter still
has the value it was cached under: a change is seen at once by every process, and a request pays
one GET (made once per request, however many caches ask).
"""

from __future__ import annotations

from flask import g

from shared.redis_client import PREFIX
from web.extensions import app_redis

EPOCH_KEY = f"{PREFIX}cache-epoch"


def current() -> bytes | None:
    if "cache_epoch" not in g:
        g.cache_epoch = app_redis().get(EPOCH_KEY)
    return g.cache_epoch


def bump() -> None:
    """Invalidate every process's cached entries (call after the change is committed)."""
    app_redis().incr(EPOCH_KEY)
    g.pop("cache_epoch", None)
