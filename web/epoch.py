"""The cache epoch (shared/cache_epoch.py) as the web tier reads it: once per request, however
many caches ask (the API-key cache, the servable-model cache)."""

from __future__ import annotations

from flask import g

from shared import cache_epoch
from web.extensions import app_redis


def current() -> bytes:
    if "cache_epoch" not in g:
        g.cache_epoch = cache_epoch.read(app_redis())
    return g.cache_epoch


def bump() -> None:
    """Invalidate every process's cached entries (call after the change is committed)."""
    cache_epoch.bump(app_redis())
    g.pop("cache_epoch", None)
