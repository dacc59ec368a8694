"""Done-signals: a worker pushes to a per-object Redis list; waiters block on it with BLPOP.

One round trip, no polling. A waiter that receives the signal puts it back so that every other
waiter (several long-polls on one job) wakes too; the list expires on its own. A sync predict's
signal carries the finished job itself (`reply_commands`; the waiter blocks on `reply_key` in
the round trip that queues the job, shared/queueing.push_and_wait), so it answers without
reading the database. A drainer sends its batch's signals in the round trip that leases the
next batch (workers/serving/batching.py); `signal_done` sends them on their own.
"""

from __future__ import annotations

import redis

from shared.config import get_settings
from shared.redis_client import MAX_BLOCK_S, PREFIX, client_for, roundtrip

SIGNAL_TTL_S = 300
# A done-signal without a payload: its waiter reads the object itself.
DONE = b"1"


def reply_key(kind: str, ident: object) -> str:
    """The list an object's done-signal (or reply) is pushed to."""
    return f"{PREFIX}done:{kind}:{ident}"


def signal_done(kind: str, idents: list, url: str | None = None) -> None:
    """Wake everyone waiting on these objects (one round trip for a whole batch)."""
    send_commands(_client(url), done_commands(kind, idents))


def done_commands(kind: str, idents: list) -> list[tuple]:
    """The Redis commands of `signal_done`, for a caller that sends them with its own."""
    return _pushes({reply_key(kind, ident): DONE for ident in idents})


def reply_commands(kind: str, replies: dict[str, bytes]) -> list[tuple]:
    """Done-signals with a payload each (the finished job object), as Redis commands."""
    return _pushes({reply_key(kind, ident): payload for ident, payload in replies.items()})


def _pushes(payloads: dict[str, bytes]) -> list[tuple]:
    commands: list[tuple] = []
    for key, payload in payloads.items():
        commands += [("RPUSH", key, payload), ("EXPIRE", key, SIGNAL_TTL_S)]
    return commands


def send_commands(client: redis.Redis, commands: list[tuple]) -> None:
    """Send signal commands in one round trip (straight to one connection, no Pipeline)."""
    if commands:
        roundtrip(client, *commands)


def _client(url: str | None) -> redis.Redis:
    return client_for(url or get_settings().redis_url)


def wait_done(kind: str, ident: object, timeout_s: float, url: str | None = None) -> bool:
    """Block until the object is signalled done or the timeout passes; True when signalled."""
    return wait_signal(kind, ident, timeout_s, url) is not None


def wait_signal(kind: str, ident: object, timeout_s: float, url: str | None = None) -> bytes | None:
    """Block until the object is signalled done or the timeout passes: the signal (DONE, or the
    finished object a worker replied with), None on timeout."""
    if timeout_s <= 0:
        return None
    client = client_for(url or get_settings().redis_url, blocking=True)
    key = reply_key(kind, ident)
    got = client.blpop([key], timeout=min(timeout_s, MAX_BLOCK_S))
    if got is None:
        return None
    signal = got[1]
    roundtrip(client, ("RPUSH", key, signal), ("EXPIRE", key, SIGNAL_TTL_S))  # for the next waiter
    return signal
