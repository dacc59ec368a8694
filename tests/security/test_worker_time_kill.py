"""Issue 18, finding 5 (worker side): a prediction that runs in C past the hard time limit pins
one worker child once, not every child over and over; one owner cannot take the whole pool.

Real worker and beat processes. A model cannot loop forever through an allowed pickle here (the
upload checks refuse that), so the slow prediction is honest work in one long C call: a
nearest-neighbour search with the Manhattan metric (no BLAS, one nogil loop, ~1.2e9 distance
terms per second per core on these machines), where the soft time limit cannot interrupt it.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from shared import queueing
from shared.db import session_scope
from shared.jobs import Job
from shared.redis_client import get_redis
from tests.fixtures.models import fit_classifier, insert_ready_model
from tests.fixtures.services import isolated
from workers.celery_app import app as celery_app

pytestmark = pytest.mark.e2e
FEATURES = 16


def _slow_knn(n_train: int) -> KNeighborsClassifier:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_train, FEATURES))
    return KNeighborsClassifier(n_neighbors=1, algorithm="brute", metric="manhattan").fit(
        x, rng.integers(0, 3, n_train)
    )


def _rows(n: int) -> list[list[float]]:
    return np.random.default_rng(1).normal(size=(n, FEATURES)).round(3).tolist()


def _submit(client, account, model_id: str, rows: list) -> str:
    resp = client.post(
        f"/api/v1/models/{model_id}/jobs", json={"inputs": rows}, headers=account.headers
    )
    assert resp.status_code == 202, resp.json
    return resp.json["id"]


def _job(job_id: str) -> Job:
    with session_scope() as s:
        job = s.get(Job, job_id)
        s.expunge(job)
        return job


def _wait_final(job_id: str, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = _job(job_id)
        if job.status in ("succeeded", "failed", "expired", "cancelled"):
            return job
        time.sleep(0.1)
    return _job(job_id)


def _wait_running(job_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while _job(job_id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_batch_killed_at_the_hard_limit_fails_after_one_kill(user, other_user, tmp_path):
    """Before: the job went back to the queue after each hard kill, 1 + JOB_MAX_ATTEMPTS kills
    in all (4 x 90 s by default), into every worker. Now its batch is failed (`timeout`) at the
    first kill, and another owner's job runs meanwhile on the other child."""
    stack = isolated(
        TASK_SOFT_TIME_LIMIT_S=1, TASK_TIME_LIMIT_S=3, JOB_REAPER_INTERVAL_S=1, JOB_STUCK_AFTER_S=2
    )
    slow = insert_ready_model(user, _slow_knn(50_000), tmp_path, name="slow")  # ~7 s a call
    fast = insert_ready_model(other_user, fit_classifier(), tmp_path, name="fast")
    with stack.beat(), stack.worker(concurrency=2, name="timekill"):
        started = time.monotonic()
        poison = _submit(stack.client, user, slow, _rows(10_000))
        _wait_running(poison, 15)
        other = _submit(stack.client, other_user, fast, [[5.1, 3.5, 1.4, 0.2]])
        other_job = _wait_final(other, 10)
        job = _wait_final(poison, 25)
        elapsed = time.monotonic() - started
    assert other_job.status == "succeeded", other_job.error_message
    assert job.status == "failed" and job.error_code == "timeout", (job.status, job.error_code)
    assert "hard time limit (3s)" in job.error_message
    assert job.attempts == 1  # claimed once: never run again after the kill
    print(
        f"poison job failed after 1 kill in {elapsed:.1f} s; other owner's job succeeded "
        f"in {other_job.total_ms:.0f} ms while it ran"
    )


def _interval(job: Job) -> tuple[datetime, datetime]:
    return job.started_at, job.finished_at


def test_one_owner_cannot_hold_every_worker_child(user, other_user, tmp_path):
    """Two slow models of one owner, two children: with MAX_DRAINS_PER_OWNER at its default
    (the pool's processes - 1 = 1) the owner's jobs run one after the other, and another owner's
    job finishes at once instead of waiting for a child."""
    stack = isolated()
    knn = _slow_knn(50_000)  # ~1.3 s for 2,000 rows
    models = [insert_ready_model(user, knn, tmp_path, name=f"slow{i}") for i in range(2)]
    fast = insert_ready_model(other_user, fit_classifier(), tmp_path, name="fast")
    rows = _rows(2_000)
    with stack.worker(concurrency=2, name="owner-cap"):
        # Warm both children's caches so that timings are prediction, not loading.
        for model_id in models:
            assert _wait_final(_submit(stack.client, user, model_id, rows[:1]), 20).status == (
                "succeeded"
            )
        jobs = [_submit(stack.client, user, model_id, rows) for model_id in models]
        time.sleep(0.3)
        other = _wait_final(_submit(stack.client, other_user, fast, [[5.1, 3.5, 1.4, 0.2]]), 10)
        first, second = sorted((_wait_final(j, 30) for j in jobs), key=lambda j: j.started_at)
    assert first.status == second.status == "succeeded"
    assert other.status == "succeeded"
    assert second.started_at >= first.finished_at, (_interval(first), _interval(second))
    assert other.total_ms < 1000, other.total_ms
    print(
        f"owner's two jobs ran one after the other ({first.inference_ms:.0f} + "
        f"{second.inference_ms:.0f} ms); other owner's job took {other.total_ms:.0f} ms"
    )


def _dead_lease(model_id: str, entries: list[str], cause: str | None) -> queueing.Recovered:
    client, token = get_redis(), uuid.uuid4().hex
    client.rpush(queueing.pending_key(model_id), *entries)
    key, route = queueing.lease_key(model_id, token), queueing.Route(celery_app, "unused")
    queueing.lease_more(client, route, queueing.Group(model_id, "", []), token, 64)
    if cause:
        queueing.mark_dead(client, key, cause)
    return queueing.recover_lease(client, route, key)


def test_recovery_fails_only_what_may_have_killed_the_batch():
    """The rules of a dead lease: a batch of several killed for time runs again one job at a
    time; a lone job killed for time, or a suspect dying again alone, is set aside; a lone job
    whose worker was lost (cause unknown) gets one more run, alone."""
    model_id = str(uuid.uuid4())
    pending = queueing.pending_key(model_id)
    got = _dead_lease(model_id, ["a", "b"], "time")
    assert (got.set_aside, got.requeued) == ([], ["a", "b"])
    assert get_redis().lrange(pending, 0, -1) == [b"!a", b"!b"]
    get_redis().delete(pending)
    got = _dead_lease(model_id, ["!a"], None)  # a suspect, alone, lost again
    assert (got.cause, got.set_aside, got.requeued) == ("lost", ["a"], [])
    assert _dead_lease(model_id, ["c"], "time").set_aside == ["c"]
    got = _dead_lease(model_id, ["d"], None)
    assert (got.set_aside, got.requeued) == ([], ["d"])
    assert get_redis().lrange(pending, 0, -1) == [b"!d"]
    get_redis().delete(pending)
