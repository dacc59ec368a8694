"""Done-signals: a worker pushes to a per-object Redis list; waiters block on it with BLPOP.

One round trip, no polling. A waiter that receives the signal puts it back so that every other
waiter (several long-polls on one job) wakes too; the list expires on its own. A sync predict's
signal carries the finished job itself (`send_replies`; the waiter blocks on `reply_key` in the
round trip that queues the job, shared/queueing.push_and_wait), so it answers without reading
the database.
"""

from __future__ import annotations

from shared.config import get_settings
from shared.redis_client import MAX_BLOCK_S, PREFIX, client_for

SIGNAL_TTL_S = 300


def reply_key(kind: str, ident: object) -> str:
    """The list an object's done-signal (or reply) is pushed to."""
    return f"{PREFIX}done:{kind}:{ident}"


def signal_done(kind: str, idents: list, url: str | None = None) -> None:
    """Wake everyone waiting on these objects (one pipeline for a whole batch)."""
    pipe = client_for(url or get_settings().redis_url).pipeline(transaction=False)
    for ident in idents:
        key = reply_key(kind, ident)
        pipe.rpush(key, 1)
        pipe.expire(key, SIGNAL_TTL_S)
    pipe.execute()


def send_replies(kind: str, replies: dict[str, bytes], url: str | None = None) -> None:
    """Signal done with a payload each (the finished job object)."""
    pipe = client_for(url or get_settings().redis_url).pipeline(transaction=False)
    for ident, payload in replies.items():
        key = reply_key(kind, ident)
        pipe.rpush(key, payload)
        pipe.expire(key, SIGNAL_TTL_S)
    pipe.execute()


def wait_done(kind: str, ident: object, timeout_s: float, url: str | None = None) -> bool:
    """Block until the object is signalled done or the timeout passes; True when signalled."""
    if timeout_s <= 0:
        return False
    client = client_for(url or get_settings().redis_url, blocking=True)
    key = reply_key(kind, ident)
    if client.blpop([key], timeout=min(timeout_s, MAX_BLOCK_S)) is None:
        return False
    pipe = client.pipeline(transaction=False)
    pipe.rpush(key, 1)  # leave it for the next waiter
    pipe.expire(key, SIGNAL_TTL_S)
    pipe.execute()
    return True
