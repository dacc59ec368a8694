"""The cache epoch: one Redis counter that caches of access-relevant rows are checked against.

Web processes cache resolved API keys and servable models, workers cache model references; each
entry is only used while the counter still has the value it was read under. Whatever could revoke
access or change how a model serves (a key patched or deleted, an account disabled, a model
patched or deleted) bumps it after committing, so every process sees the change on its next read.
"""

from __future__ import annotations

import redis

from shared.redis_client import PREFIX

EPOCH_KEY = f"{PREFIX}cache-epoch"


def read(client: redis.Redis) -> bytes:
    """The current value (b"" before the first bump)."""
    return client.get(EPOCH_KEY) or b""


def bump(client: redis.Redis) -> None:
    client.incr(EPOCH_KEY)
