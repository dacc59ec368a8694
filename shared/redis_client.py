"""Redis clients for application data (done-signals, job queues, token revocation, caches).

The broker connection is Celery's own; these share its server (REDIS_URL) under the `mlsp:` key
prefix so that nothing here collides with kombu's keys. Clients are cached per URL, so an app
built with its own settings (tests, several apps in one process) talks to its own Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

from shared.config import SENTINEL_SCHEME, get_settings

# Every application key starts with this (REDIS_KEY_PREFIX): deployments or test runs sharing one
# Redis keep apart. Taken once at import, like the key names other modules build from it.
PREFIX = get_settings().redis_key_prefix
# Blocking reads (BLPOP) may wait up to this long; their socket timeout sits just above it.
MAX_BLOCK_S = 60


@dataclass(frozen=True)
class SentinelTarget:
    """A `redis+sentinel://` URL (shared/config.py builds it from REDIS_SENTINELS) taken apart."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int
    username: str | None
    password: str | None
    sentinel_password: str | None


def sentinel_target(url: str) -> SentinelTarget | None:
    """The sentinels a URL names, or None for a plain redis:// URL."""
    if not url.startswith(SENTINEL_SCHEME):
        return None
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    master, _, db = parts.path.strip("/").partition("/")
    sentinels = tuple((h, int(p)) for h, _, p in (a.rpartition(":") for a in hosts.split(",")))
    return SentinelTarget(
        sentinels,
        master,
        int(db or 0),
        unquote(user) or None,
        unquote(password) or None,
        parse_qs(parts.query).get("sentinel_password", [None])[0],
    )


@lru_cache(maxsize=16)
def client_for(url: str, blocking: bool = False) -> redis.Redis:
    """A pooled client; `blocking` ones tolerate long BLPOPs, the others fail fast."""
    options: dict[str, Any] = {
        "socket_connect_timeout": 2,
        "socket_timeout": MAX_BLOCK_S + 5 if blocking else 5,
        "health_check_interval": 30,
        "max_connections": 500 if blocking else 200,
    }
    target = sentinel_target(url)
    if target is None:
        return redis.Redis.from_url(url, **options)
    return _sentinel(target).master_for(
        target.master,
        db=target.db,
        username=target.username,
        password=target.password,
        retry=_failover_retry(blocking),
        **options,
    )


def _sentinel(target: SentinelTarget) -> Sentinel:
    # Sentinels answer at once or not at all: a dead one must not hold a lookup for long.
    asked = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
    if target.sentinel_password:
        asked["password"] = target.sentinel_password
    return Sentinel(list(target.sentinels), sentinel_kwargs=asked)


def _failover_retry(blocking: bool) -> Retry:
    """Through a failover a command meets a dead or demoted master until the sentinels name the
    new one (seconds): short commands retry on a fresh connection, which asks the sentinels
    again, for ~3 s. A blocking wait is never sent again: it would restart with its whole
    timeout and outlast the client's; its caller answers instead (202 or 503)."""
    if blocking:
        return Retry(NoBackoff(), 0)
    return Retry(ExponentialBackoff(cap=0.5, base=0.05), 8)


def limiter_storage(url: str) -> tuple[str, dict[str, Any]]:
    """flask-limiter's storage URI and options for `url` (limits' own redis+sentinel:// form
    names only the sentinels and the master: the database and credentials go in the options;
    replicas are not read, a counter read from one lags its master)."""
    target = sentinel_target(url)
    if target is None:
        return url, {}
    hosts = ",".join(f"{host}:{port}" for host, port in target.sentinels)
    options: dict[str, Any] = {"db": target.db, "use_replicas": False}
    if target.password:
        options |= {"username": target.username, "password": target.password}
    if target.sentinel_password:
        options["sentinel_kwargs"] = {"password": target.sentinel_password}
    return f"{SENTINEL_SCHEME}{hosts}/{target.master}", options


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
