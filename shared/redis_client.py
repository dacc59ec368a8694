"""Redis clients for application data (done-signals, job queues, token revocation, caches).

The broker connection is Celery's own; these share its server (REDIS_URL) under the `mlsp:` key
prefix so that nothing here collides with kombu's keys. Clients are cached per URL, so an app
built with its own settings (tests, several apps in one process) talks to its own Redis.
"""

from __future__ import annotations

from functools import lru_cache

import redis

from shared.config import get_settings

# Every application key starts with this (REDIS_KEY_PREFIX): deployments or test runs sharing one
# Redis keep apart. Taken once at import, like the key names other modules build from it.
PREFIX = get_settings().redis_key_prefix
# Blocking reads (BLPOP) may wait up to this long; their socket timeout sits just above it.
MAX_BLOCK_S = 60


@lru_cache(maxsize=16)
def client_for(url: str, blocking: bool = False) -> redis.Redis:
    """A pooled client; `blocking` ones tolerate long BLPOPs, the others fail fast."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=2,
        socket_timeout=MAX_BLOCK_S + 5 if blocking else 5,
        health_check_interval=30,
        max_connections=500 if blocking else 200,
    )


def roundtrip(client: redis.Redis, *commands: tuple) -> list:
    """Commands written together on one pooled connection, their replies read in order: what a
    redis-py Pipeline sends, without its per-call machinery (objects, observability hooks: a
    third of a sync predict's Redis time in the web's Python) and without its retry, which after
    a dropped connection sends everything again (a push twice). An error reply raises after the
    connection is closed, which also cancels a blocking command queued behind it (the BLPOP of
    a push that failed would otherwise wait out its timeout)."""
    pool = client.connection_pool
    conn = pool.get_connection()
    try:
        conn.send_packed_command(conn.pack_commands(commands))
        return [conn.read_response() for _ in commands]
    except BaseException:
        conn.disconnect()
        raise
    finally:
        pool.release(conn)


def get_redis() -> redis.Redis:
    """Client for the process's configured Redis (workers, CLI)."""
    return client_for(get_settings().redis_url)


def reset_clients() -> None:
    """Drop pooled connections inherited across fork."""
    client_for.cache_clear()
