"""How much work is waiting: the Celery queue(s) and the per-model pending lists.

Read at scrape/probe time (health, /metrics), so it must stay cheap however many keys Redis
holds: one bounded SCAN for the `mlsp:pending:*` lists, then one pipelined LLEN round trip.
Both endpoints are unauthenticated, so only aggregates leave here: a model id names a tenant's
model (issue 18), and the per-model figures stay inside Redis.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from shared.queueing import PENDING_PREFIX

PENDING_PATTERN = f"{PENDING_PREFIX}*"
SCAN_COUNT = 1000
MAX_SCAN_CALLS = 50  # about 50,000 keys looked at, a few milliseconds


@dataclass
class QueueDepths:
    """Celery queue lengths by name; pending job ids in all per-model lists, how many lists hold
    any, and the longest one (a hot model shows without naming it)."""

    celery: dict[str, int] = field(default_factory=dict)
    pending_total: int = 0
    pending_models: int = 0
    pending_max: int = 0
    truncated: bool = False
    # (model id, pending) of the longest lists, longest first; only when asked for (`top`)
    top_models: list[tuple[str, int]] = field(default_factory=list)


def _pending_keys(client: redis.Redis) -> tuple[list[str], bool]:
    keys: set[str] = set()
    cursor, calls = 0, 0
    while True:
        cursor, batch = client.scan(cursor, match=PENDING_PATTERN, count=SCAN_COUNT)
        keys.update(k.decode() if isinstance(k, bytes) else k for k in batch)
        calls += 1
        if cursor == 0:
            return sorted(keys), False
        if calls >= MAX_SCAN_CALLS:
            return sorted(keys), True


def read_depths(client: redis.Redis, celery_queues: list[str], top: int = 0) -> QueueDepths:
    """One snapshot, with the `top` longest per-model lists by model id (METRICS_TOP_MODELS);
    raises redis errors (callers decide what an outage means)."""
    keys, truncated = _pending_keys(client)
    pipe = client.pipeline(transaction=False)
    for name in [*celery_queues, *keys]:
        pipe.llen(name)
    lengths = [int(n) for n in pipe.execute()]
    celery = dict(zip(celery_queues, lengths[: len(celery_queues)], strict=True))
    by_key = [(key, n) for key, n in zip(keys, lengths[len(celery_queues) :], strict=True) if n]
    pending = [n for _, n in by_key]
    longest = sorted(by_key, key=lambda item: (-item[1], item[0]))[:top]
    top_models = [(key.removeprefix(PENDING_PREFIX), n) for key, n in longest]
    return QueueDepths(
        celery, sum(pending), len(pending), max(pending, default=0), truncated, top_models
    )
