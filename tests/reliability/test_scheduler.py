"""The drain scheduler with real worker processes: many models served by few drain tasks, no job
lost or run twice when the worker dies with fifty models active, and a flooding user who cannot
starve another. Counts and order are checked, not times."""

from __future__ import annotations

import time
import uuid

import pytest
from sklearn.ensemble import RandomForestClassifier
from sqlalchemy import func, select, text

from shared.db import session_scope
from shared.jobs import FINAL_JOB_STATUSES, Job
from tests.fixtures.models import insert_ready_model, iris
from tests.fixtures.services import isolated
from tests.reliability.test_recovery import FAST_RECOVERY, _kill_holding_a_job

pytestmark = pytest.mark.e2e
ROW = [5.1, 3.5, 1.4, 0.2]


def _submit(client, account, model_id: str) -> str:
    resp = client.post(
        f"/api/v1/models/{model_id}/jobs", json={"inputs": [ROW]}, headers=account.headers
    )
    assert resp.status_code == 202, resp.json
    return resp.json["id"]


def _counts(**where: object) -> dict[str, int]:
    query = select(Job.status, func.count()).group_by(Job.status)
    for column, value in where.items():
        query = query.where(getattr(Job, column) == value)
    with session_scope() as s:
        return dict(s.execute(query).all())


def _wait_until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def _forest(trees: int) -> RandomForestClassifier:
    x, y = iris()
    return RandomForestClassifier(n_estimators=trees, max_depth=4, random_state=0).fit(x, y)


def _final(n: int) -> bool:
    return sum(_counts().get(s, 0) for s in FINAL_JOB_STATUSES) >= n


def test_kill9_with_fifty_models_active_loses_no_job(user, other_user, tmp_path, result_writes):
    """200 jobs over 50 models of two users, each job its own batch; the worker's main process
    and children are killed while one holds a job. After a restart every job of every model has
    succeeded, each with exactly one result write."""
    stack = isolated(BATCH_MAX_JOBS=1, BATCH_MAX_WAIT_MS=0, **FAST_RECOVERY)
    forest = _forest(200)  # ~0.1 s to load, 5-10 ms a call: a kill finds a job running
    owners = [user, other_user] * 25
    models = [
        insert_ready_model(account, forest, tmp_path, name=f"m{i}")
        for i, account in enumerate(owners)
    ]
    ids = [_submit(stack.client, owners[i % 50], models[i % 50]) for i in range(200)]
    with stack.beat():
        with stack.worker(concurrency=2, name="doomed") as doomed:
            assert _wait_until(lambda: _counts().get("succeeded", 0) >= 20, 60), _counts()
            _kill_holding_a_job(doomed)
            doomed.wait()
        at_kill = _counts()
        assert at_kill.get("succeeded", 0) < 200, "too fast to be killed mid-run"
        with stack.worker(concurrency=2, name="restarted"):
            assert _wait_until(lambda: _final(200), 90), _counts()
    assert _counts() == {"succeeded": 200}
    with session_scope() as s:
        per_model = dict(s.execute(select(Job.model_id, func.count()).group_by(Job.model_id)).all())
        writes = s.execute(text("SELECT count(*), count(DISTINCT job_id) FROM result_writes")).one()
        retried = s.scalar(select(func.count()).where(Job.id.in_(ids), Job.attempts > 1))
    assert sorted(per_model.values()) == [4] * 50  # every model drained
    assert tuple(writes) == (200, 200)
    assert retried >= 1
    print(f"kill -9 with 50 models active: {at_kill} at the kill; all 200 succeeded once")


def test_a_flooding_user_cannot_starve_another(user, other_user, tmp_path):
    """One user has 600 jobs waiting on one model when another submits 6, one after the other.
    Each of the other's jobs starts after a bounded number of the flood's: round robin gives
    the flood one batch per turn, and its drainers are capped at all the pool but one, so the
    other user's job waits for at most the batches already running, never for the backlog."""
    batch = 4
    stack = isolated(BATCH_MAX_JOBS=batch, BATCH_MAX_WAIT_MS=0)
    model = _forest(1000)  # ~30 ms a batch: a flood batch is slower than sending a drain task
    flood_model = insert_ready_model(user, model, tmp_path, name="flood")
    quiet_model = insert_ready_model(other_user, _forest(10), tmp_path, name="quiet")
    for _ in range(600):
        _submit(stack.client, user, flood_model)
    with stack.worker(concurrency=2, name="fair"):
        assert _wait_until(lambda: _counts(owner_id=_uuid(user)).get("succeeded", 0) >= 40, 60)
        quiet = [_submit(stack.client, other_user, quiet_model) for _ in range(6)]
        assert _wait_until(lambda: _counts(owner_id=_uuid(other_user)).get("succeeded", 0) == 6, 60)
        with session_scope() as s:
            waits = [
                _overtaken(s, flood_model, job)
                for job in s.scalars(select(Job).where(Job.id.in_(quiet)))
            ]
            still_waiting = s.scalar(
                select(func.count()).where(Job.model_id == flood_model, Job.started_at.is_(None))
            )
    # Per quiet job: the flood's batch running when it came, one more per process while a
    # drain task is sent for it, and the slack of a loaded machine: 4 batches of each process.
    assert max(waits) <= 4 * 2 * batch, waits
    assert still_waiting >= 300, still_waiting
    print(
        f"flood jobs started while each of the other user's 6 waited: {waits}; "
        f"flood jobs still waiting when they were done: {still_waiting}"
    )


def _overtaken(session, flood_model: str, job: Job) -> int:
    """Flood jobs that started while `job` waited."""
    return session.scalar(
        select(func.count()).where(
            Job.model_id == flood_model,
            Job.started_at > job.created_at,
            Job.started_at < job.started_at,
        )
    )


def _uuid(account) -> uuid.UUID:
    return uuid.UUID(account.id)
