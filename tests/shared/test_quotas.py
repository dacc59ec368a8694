"""Prediction quotas counted inside the admitting scripts (shared/quotas.py, shared/queueing.py)
against a real Redis: a push or an admission counts once, a refused one (quota spent, list full,
epoch moved) counts nothing, the previous window weighs in by its share, and the state reported
for the X-RateLimit headers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import pytest

from shared import cache_epoch, queueing, quotas
from shared.cache_epoch import Stale
from shared.config import get_settings
from shared.quotas import QuotaSpent
from shared.redis_client import client_for, get_redis
from shared.signals import reply_key
from workers.celery_app import app as celery_app


@pytest.fixture
def route() -> Iterator[queueing.Route]:
    route = queueing.Route(celery_app, f"quota-test-{uuid.uuid4().hex[:8]}")
    yield route
    get_redis().delete(route.queue)


def _quota(caller: str, limits: str = "3/minute", now: float | None = None) -> quotas.Quota:
    return quotas.quota(caller, quotas.parse(limits), time.time() if now is None else now)


def _depth(model_id: str) -> int:
    return queueing.queue_depth(get_redis(), model_id)


def test_pushes_count_until_the_quota_is_spent_then_nothing_is_pushed(route):
    caller, model_id = f"user:{uuid.uuid4()}", str(uuid.uuid4())
    remaining = []
    for n in range(3):
        quota = _quota(caller)
        queueing.push_jobs(get_redis(), route, model_id, [f"job-{n}"], quota=quota)
        remaining.append(quota.state.remaining)
        assert quota.state.limit == 3
    assert remaining == [2, 1, 0]
    with pytest.raises(QuotaSpent) as spent:
        queueing.push_jobs(get_redis(), route, model_id, ["job-3"], quota=_quota(caller))
    assert spent.value.state.remaining == 0
    assert 1 <= spent.value.state.retry_after(time.time()) <= 60
    assert _depth(model_id) == 3
    # Another caller's quota is its own.
    other = _quota(f"user:{uuid.uuid4()}")
    queueing.push_jobs(get_redis(), route, model_id, ["job-4"], quota=other)
    assert other.state.remaining == 2


def test_a_sync_wait_refused_by_its_quota_returns_at_once(route):
    caller, model_id = f"user:{uuid.uuid4()}", str(uuid.uuid4())
    blocking = client_for(get_settings().redis_url, blocking=True)
    queueing.push_jobs(get_redis(), route, model_id, ["first"], quota=_quota(caller, "1/minute"))
    reply = reply_key("job", uuid.uuid4())
    started = time.monotonic()
    with pytest.raises(QuotaSpent):
        queueing.push_and_wait(
            blocking, route, model_id, "second", reply, 10, quota=_quota(caller, "1/minute")
        )
    assert time.monotonic() - started < 2  # the marker ended the pipelined wait
    assert _depth(model_id) == 1 and not get_redis().exists(reply)


def test_refusals_for_a_full_list_or_a_moved_epoch_count_nothing(route):
    caller, model_id = f"user:{uuid.uuid4()}", str(uuid.uuid4())
    queueing.push_jobs(get_redis(), route, model_id, ["waiting"])
    with pytest.raises(queueing.QueueFull):
        queueing.push_jobs(get_redis(), route, model_id, ["x"], max_depth=1, quota=_quota(caller))
    with pytest.raises(queueing.QueueFull):
        queueing.admit(get_redis(), route, model_id, max_depth=1, quota=_quota(caller))
    now = cache_epoch.bump(get_redis())
    with pytest.raises(Stale):
        queueing.admit(get_redis(), route, model_id, expect_epoch=b"0", quota=_quota(caller))
    quota = _quota(caller)
    depth, epoch = queueing.admit(get_redis(), route, model_id, expect_epoch=now, quota=quota)
    assert (depth, epoch) == (1, now)
    assert quota.state.remaining == 2  # only this admission counted
    assert _depth(model_id) == 1  # admitting pushes nothing


def test_the_previous_window_counts_by_the_share_still_inside_the_sliding_window(route):
    caller, model_id = f"user:{uuid.uuid4()}", str(uuid.uuid4())
    window = 60
    start = (int(time.time()) // window + 1) * window  # a window boundary
    full = _quota(caller, "4/minute", now=start - 1)  # the last second of the previous window
    for _ in range(4):
        queueing.admit(
            get_redis(), route, model_id, quota=_quota(caller, "4/minute", now=start - 1)
        )
    # A quarter into the next window, three quarters of the previous window's 4 still count: 3.
    quota = _quota(caller, "4/minute", now=start + window / 4)
    queueing.admit(get_redis(), route, model_id, quota=quota)
    assert quota.state.remaining == 0
    assert quota.state.reset_at == start + window
    with pytest.raises(QuotaSpent):
        queueing.admit(
            get_redis(), route, model_id, quota=_quota(caller, "4/minute", now=start + 15)
        )
    # Halfway, the previous window counts 2 and this one 1: one more fits.
    queueing.admit(get_redis(), route, model_id, quota=_quota(caller, "4/minute", now=start + 30))
    assert full.keys[0].endswith(f":{start // window - 1}")


def test_several_limits_report_the_tightest(route):
    caller, model_id = f"user:{uuid.uuid4()}", str(uuid.uuid4())
    quota = _quota(caller, "100/minute;2/hour")
    queueing.admit(get_redis(), route, model_id, quota=quota)
    assert (quota.state.limit, quota.state.remaining) == (2, 1)
    queueing.admit(get_redis(), route, model_id, quota=_quota(caller, "100/minute;2/hour"))
    with pytest.raises(QuotaSpent) as spent:
        queueing.admit(get_redis(), route, model_id, quota=_quota(caller, "100/minute;2/hour"))
    assert spent.value.state.limit == 2
