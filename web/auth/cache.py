"""In-process cache of resolved API keys, checked against the cache epoch (web/epoch.py).

Resolving a key is a database join on the hot path of every machine request. Each process keeps
what it resolved; any change that could revoke a key (a key patched or deleted, an account
disabled) bumps the epoch. So revocation stays immediate in every process, and the common request
pays one Redis GET instead of a query.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from shared.models import User

ENTRY_TTL_S = 60
MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Principal:
    """The authenticated user as the routes read it (no database session attached)."""

    id: uuid.UUID
    email: str
    is_admin: bool
    is_active: bool
    created_at: datetime

    @classmethod
    def of(cls, user: User) -> Principal:
        return cls(user.id, user.email, user.is_admin, user.is_active, user.created_at)


@dataclass(frozen=True)
class Entry:
    epoch: bytes
    principal: Principal
    api_key_id: uuid.UUID
    expires_at: datetime | None
    cached_at: float


_entries: dict[str, Entry] = {}
_lock = threading.Lock()


def lookup(key_hash: str, epoch: bytes) -> Entry | None:
    entry = _entries.get(key_hash)
    if entry is None or entry.epoch != epoch or time.monotonic() - entry.cached_at > ENTRY_TTL_S:
        return None
    if entry.expires_at is not None and entry.expires_at <= datetime.now(UTC):
        return None
    return entry


def store(key_hash: str, entry: Entry) -> None:
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()  # crude but bounded; a refill costs one query per key
        _entries[key_hash] = entry
