"""Redis clients for application data (done-signals, token revocation, caches).

The broker connection is Celery's own; these share its server (REDIS_URL) under the `mlsp:` key
prefix so that nothing here collides with kombu's keys.
"""

from __future__ import annotations

from functools import lru_cache

import redis

from shared.config import get_settings

PREFIX = "mlsp:"


@lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    """Client for short commands: fails fast when Redis is down."""
    return redis.Redis.from_url(
        get_settings().redis_url,
        socket_connect_timeout=2,
        socket_timeout=5,
        health_check_interval=30,
        max_connections=200,
    )


def reset_clients() -> None:
    """Drop pooled connections inherited across fork."""
    get_redis.cache_clear()
