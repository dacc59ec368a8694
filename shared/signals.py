"""Done-signals: a worker pushes to a per-object Redis list; waiters block on it with BLPOP.

One round trip, no polling. A waiter that receives the signal puts it back so that every other
waiter (several long-polls on one job) wakes too; the list expires on its own. A sync predict's
signal carries the finished job itself (`send_replies` / `wait_reply`), so its waiter answers
without reading the database.
"""

from __future__ import annotations

from shared.config import get_settings
from shared.redis_client import MAX_BLOCK_S, PREFIX, client_for

SIGNAL_TTL_S = 300


def _key(kind: str, ident: object) -> str:
    return f"{PREFIX}done:{kind}:{ident}"


def signal_done(kind: str, idents: list, url: str | None = None) -> None:
    """Wake everyone waiting on these objects (one pipeline for a whole batch)."""
    pipe = client_for(url or get_settings().redis_url).pipeline(transaction=False)
    for ident in idents:
        key = _key(kind, ident)
        pipe.rpush(key, 1)
        pipe.expire(key, SIGNAL_TTL_S)
    pipe.execute()


def send_replies(kind: str, replies: dict[str, bytes], url: str | None = None) -> None:
    """Signal done with a payload each (the finished job object)."""
    pipe = client_for(url or get_settings().redis_url).pipeline(transaction=False)
    for ident, payload in replies.items():
        key = _key(kind, ident)
        pipe.rpush(key, payload)
        pipe.expire(key, SIGNAL_TTL_S)
    pipe.execute()


def wait_reply(kind: str, ident: object, timeout_s: float, url: str | None = None) -> bytes | None:
    """Block for the one waiter's payload (nobody else knows the id yet: nothing to put back)."""
    if timeout_s <= 0:
        return None
    client = client_for(url or get_settings().redis_url, blocking=True)
    got = client.blpop([_key(kind, ident)], timeout=min(timeout_s, MAX_BLOCK_S))
    return None if got is None else got[1]


def wait_done(kind: str, ident: object, timeout_s: float, url: str | None = None) -> bool:
    """Block until the object is signalled done or the timeout passes; True when signalled."""
    if timeout_s <= 0:
        return False
    client = client_for(url or get_settings().redis_url, blocking=True)
    key = _key(kind, ident)
    if client.blpop([key], timeout=min(timeout_s, MAX_BLOCK_S)) is None:
        return False
    pipe = client.pipeline(transaction=False)
    pipe.rpush(key, 1)  # leave it for the next waiter
    pipe.expire(key, SIGNAL_TTL_S)
    pipe.execute()
    return True
