"""The cache epoch: one Redis counter that caches of access-relevant rows are checked against.

Web processes cache resolved API keys and servable models, workers cache model references; each
entry is only used while the counter still has the value it was read under. Whatever could revoke
access or change how a model serves (a key patched or deleted, an account disabled, a model
patched or deleted) bumps it after committing, so every process sees the change on its next read.

The hot prediction routes do not read it up front: they assume the value their process saw last
and have it checked in the same Redis round trip as the action (the push script, or the depth
read before a job row is written). A mismatch raises `Stale` before anything happens, and the
request is decided again under the current value.
"""

from __future__ import annotations

import redis

from shared.redis_client import PREFIX

EPOCH_KEY = f"{PREFIX}cache-epoch"


def read(client: redis.Redis) -> bytes:
    """The current value (b"" before the first bump)."""
    return client.get(EPOCH_KEY) or b""


def bump(client: redis.Redis) -> bytes:
    """Move it on; returns the new value."""
    return str(client.incr(EPOCH_KEY)).encode()


class Stale(Exception):
    """The epoch a request assumed has moved on: nothing was done; `epoch` is the current one."""

    def __init__(self, epoch: bytes) -> None:
        super().__init__("cache epoch moved")
        self.epoch = epoch
