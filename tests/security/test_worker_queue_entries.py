"""Issue 18, finding 9 (second half): an entry a drain cannot process (here: an inline job with
a null deadline, as `?timeout=nan` once queued, and bytes that are no entry at all) is set aside:
recorded as failed where it names a job, logged, removed from the list. Before, each drain
raised on it and put it back at the head, which wedged the model's queue for good."""

from __future__ import annotations

import time

import orjson
import pytest

from shared import queueing
from shared.db import session_scope
from shared.inline_jobs import InlineJob
from shared.jobs import Job
from shared.redis_client import get_redis
from tests.fixtures.models import fit_classifier, insert_ready_model
from tests.fixtures.services import isolated

pytestmark = pytest.mark.e2e
ROW = [5.1, 3.5, 1.4, 0.2]


def _job(job_id: str) -> Job:
    with session_scope() as s:
        job = s.get(Job, job_id)
        s.expunge(job)
        return job


def test_unprocessable_entries_are_set_aside_and_the_queue_behind_them_drains(user, tmp_path):
    stack = isolated()
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    submit = f"/api/v1/models/{model_id}/jobs"
    good, named = (
        stack.client.post(submit, json={"inputs": [ROW]}, headers=user.headers).json["id"]
        for _ in range(2)
    )
    redis, pending = get_redis(), queueing.pending_key(model_id)
    assert redis.lrem(pending, 0, named) == 1  # `named` travels as a broken inline entry instead
    now = time.time()
    inline = InlineJob(named, model_id, user.id, 1, [ROW], False, now, now + 10, None).encode()
    broken = orjson.loads(inline) | {"deadline": None}  # what timeout=nan queued
    redis.lpush(pending, "\x00 not an entry", orjson.dumps(broken).decode())  # ahead of `good`
    with stack.worker(concurrency=1, name="entries"):
        deadline = time.monotonic() + 20
        while _job(good).status != "succeeded" and time.monotonic() < deadline:
            time.sleep(0.1)
        elapsed = 20 - (deadline - time.monotonic())
    assert _job(good).status == "succeeded"
    failed = _job(named)
    assert (failed.status, failed.error_code) == ("failed", "bad_queue_entry")
    assert redis.llen(pending) == 0
    print(
        f"good job succeeded {elapsed:.1f} s after the worker started; the broken entry's job"
        f" recorded failed ({failed.error_message}); list empty"
    )
