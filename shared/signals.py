"""Done-signals: a worker pushes to a per-object Redis list; waiters block on it with BLPOP.

One round trip, no polling. A waiter that receives the signal puts it back so that every other
waiter (several long-polls on one job) wakes too; the list expires on its own.
"""

from __future__ import annotations

from functools import lru_cache

import redis

from shared.config import get_settings
from shared.redis_client import PREFIX

SIGNAL_TTL_S = 300
MAX_WAIT_S = 60


def _key(kind: str, ident: object) -> str:
    return f"{PREFIX}done:{kind}:{ident}"


@lru_cache(maxsize=1)
def _blocking_client() -> redis.Redis:
    # Reads may block up to the longest wait; the socket timeout sits just above it.
    return redis.Redis.from_url(
        get_settings().redis_url,
        socket_connect_timeout=2,
        socket_timeout=MAX_WAIT_S + 5,
        max_connections=500,
    )


def reset_clients() -> None:
    _blocking_client.cache_clear()


def signal_done(kind: str, idents: list[object], client: redis.Redis | None = None) -> None:
    """Wake everyone waiting on these objects (one pipeline for a whole batch)."""
    pipe = (client or _blocking_client()).pipeline(transaction=False)
    for ident in idents:
        key = _key(kind, ident)
        pipe.rpush(key, 1)
        pipe.expire(key, SIGNAL_TTL_S)
    pipe.execute()


def wait_done(kind: str, ident: object, timeout_s: float) -> bool:
    """Block until the object is signalled done or the timeout passes; True when signalled."""
    if timeout_s <= 0:
        return False
    client = _blocking_client()
    key = _key(kind, ident)
    got = client.blpop([key], timeout=min(timeout_s, MAX_WAIT_S))
    if got is None:
        return False
    pipe = client.pipeline(transaction=False)
    pipe.rpush(key, 1)  # leave it for the next waiter
    pipe.expire(key, SIGNAL_TTL_S)
    pipe.execute()
    return True
