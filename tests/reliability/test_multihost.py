"""Several hosts: web (with beat) on one, a Celery worker on each of two others, every host in a
network namespace of its own with its own hostname and its own TMPDIR (the artifact cache there),
no directory shared with any other (tests/fixtures/multihost.py). PostgreSQL and Redis stay on
the root namespace's loopback, reached over the veth network through TCP forwarders; artifacts
live on an S3 API server (moto) on the bridge's address. Two models are uploaded through the web
host; 500 single-row jobs are submitted, and one worker host loses every process (kill -9 of its
process group) while it has jobs in hand: every job still succeeds, exactly once."""

from __future__ import annotations

import io
import itertools
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import joblib
import numpy as np
import pytest
import requests
from sklearn.ensemble import RandomForestClassifier
from sqlalchemy import text

from shared.db import session_scope
from tests.fixtures.api import PASSWORD
from tests.fixtures.models import iris
from tests.fixtures.multihost import CACHE_DIR, LOCAL_STORE, METRICS_PORT, Cluster, cluster

pytestmark = pytest.mark.e2e
JOBS = 500
# Two models (each validation boots a sandbox: ~5 s of CPU): one forced to scikit-learn (slow
# calls: the kill finds jobs in hand), one on ONNX Runtime (its compiled graph in S3 too).
MODELS = 2
SKLEARN_MODELS = 1
WORKER_HOSTS = ("a", "b")
DOOMED, SURVIVOR = WORKER_HOSTS
EVERYWHERE = {
    "JOB_REAPER_INTERVAL_S": "1",
    "JOB_STUCK_AFTER_S": "2",
    "HEALTH_WORKERS_REFRESH_S": "1",
    # Counted across every host (in Redis): the default, one fewer than a host's children, is
    # one host's worth; this deployment has two hosts of two children.
    "MAX_DRAINS_PER_OWNER": "3",
}
# The fleet that serves the jobs is restarted with short task limits: a `running` job is taken
# over once its claim is older than TASK_TIME_LIMIT_S + 5 s (the validations before need more:
# a worker child's first one starts the sandbox).
FAST_RECOVERY = {"TASK_SOFT_TIME_LIMIT_S": "4", "TASK_TIME_LIMIT_S": "6"}


def _wait(predicate, timeout: float, message: str | Callable[[], str]):
    """`predicate`'s first true value within `timeout`; else fail with `message` (a callable:
    called then, to report the state at the failure)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, message() if callable(message) else message
        time.sleep(0.1)
    return value


def _login(base: str) -> dict[str, str]:
    body = {"email": f"multihost-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD}
    assert requests.post(f"{base}/api/v1/auth/register", json=body, timeout=10).status_code == 201
    tokens = requests.post(f"{base}/api/v1/auth/login", json=body, timeout=10).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _forests() -> list[RandomForestClassifier]:
    """The scikit-learn-served ones with 300 trees (~20 ms a call: a worker that takes their jobs
    holds them long enough to be caught), the ONNX ones with 60."""
    x, y = iris()
    return [
        RandomForestClassifier(
            n_estimators=300 if seed < SKLEARN_MODELS else 60, max_depth=4, random_state=seed
        ).fit(x, y)
        for seed in range(MODELS)
    ]


def _upload(base: str, headers: dict[str, str], model, index: int) -> dict:
    """Through the web host: the file streams to S3, a worker host validates it."""
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    resp = requests.post(
        f"{base}/api/v1/models",
        files={"file": (f"forest-{index}.joblib", buffer.getvalue())},
        data={"name": f"forest-{index}"},
        headers=headers,
        timeout=60,
    )
    assert resp.status_code in (201, 202), resp.text
    url = f"{base}/api/v1/models/{resp.json()['id']}"

    def ready() -> dict | None:
        body = requests.get(url, headers=headers, timeout=10).json()
        assert body["status"] in ("validating", "ready"), body
        return body if body["status"] == "ready" else None

    meta = _wait(ready, 60, f"model {index} was not validated")
    if index < SKLEARN_MODELS:
        resp = requests.patch(url, json={"runtime": "sklearn"}, headers=headers, timeout=10)
        assert resp.status_code == 200 and resp.json()["runtime"] == "sklearn", resp.text
        meta = resp.json()
    return meta


def _health_hosts(base: str) -> dict[str, int]:
    return requests.get(f"{base}/api/v1/health", timeout=10).json()["workers_by_host"]


def _submit_all(base: str, headers: dict[str, str], jobs: list[tuple[str, list[float]]]):
    """Every job through the web host, from 8 client threads; the ids in submission order."""

    def submit(job: tuple[str, list[float]]) -> str:
        model_id, row = job
        resp = requests.post(
            f"{base}/api/v1/models/{model_id}/jobs",
            json={"inputs": [row]},
            headers=headers,
            timeout=30,
        )
        assert resp.status_code == 202, resp.text
        return resp.json()["id"]

    pool = ThreadPoolExecutor(8)
    return pool, [pool.submit(submit, job) for job in jobs]


def _by_worker(statuses: tuple[str, ...] = ("succeeded", "running")) -> dict[tuple, int]:
    with session_scope() as s:
        rows = s.execute(
            text(
                "SELECT worker, status, count(*) FROM jobs WHERE status = ANY(:s)"
                " GROUP BY worker, status"
            ),
            {"s": list(statuses)},
        ).all()
    return {(worker, status): n for worker, status, n in rows}


def _both_working(c: Cluster) -> bool:
    counts = _by_worker()
    return all(counts.get((c.hostname(h), "succeeded"), 0) >= 10 for h in WORKER_HOSTS)


def _kill_with_jobs_in_hand(c: Cluster, proc: subprocess.Popen) -> list[str]:
    """Freeze the doomed host's processes (SIGSTOP: none of its jobs can change state) until
    the database shows it holding running jobs, then kill -9 them all; those jobs' ids."""
    deadline = time.monotonic() + 60
    for freezes in itertools.count(1):
        os.killpg(proc.pid, signal.SIGSTOP)
        time.sleep(0.1)  # statements already sent finish
        orphans = _running_on(c.hostname(DOOMED))
        if orphans or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)  # the host's main process and its children
            proc.wait()
            print(f"multi-host: killed at the {freezes}th freeze")
            return orphans
        os.killpg(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("unreachable")


def _jobs(ids: list[str]) -> dict[str, tuple]:
    """id -> (status, attempts, worker, predictions) of the given jobs."""
    with session_scope() as s:
        rows = s.execute(
            text(
                "SELECT id::text, status, attempts, worker, result->'predictions' FROM jobs"
                " WHERE id = ANY(CAST(:ids AS uuid[]))"
            ),
            {"ids": ids},
        ).all()
    return {row[0]: tuple(row[1:]) for row in rows}


def _running_on(hostname: str) -> list[str]:
    with session_scope() as s:
        rows = s.execute(
            text("SELECT id::text FROM jobs WHERE status = 'running' AND worker = :w"),
            {"w": hostname},
        ).all()
    return [row[0] for row in rows]


def _expected(forests: list, picks: list[int], rows: np.ndarray) -> np.ndarray:
    """Each job's local answer: its model's predict() on its row (one call per model)."""
    out = np.empty(len(rows), dtype=int)
    chosen = np.asarray(picks)
    for index, forest in enumerate(forests):
        out[chosen == index] = forest.predict(rows[chosen == index])
    return out


def _finished(ids: list[str]) -> bool:
    return all(row[0] in ("succeeded", "failed") for row in _jobs(ids).values())


def _served_by_host(c: Cluster) -> dict[str, set[str]]:
    """Worker host -> the sha256 of what served the jobs it ran (an upload, or its ONNX graph)."""
    with session_scope() as s:
        rows = s.execute(
            text(
                "SELECT DISTINCT j.worker, CASE WHEN m.runtime = 'onnx' THEN m.onnx_sha256"
                " ELSE m.sha256 END FROM jobs j JOIN models m ON m.id = j.model_id"
            )
        ).all()
    names = {c.hostname(host): host for host in WORKER_HOSTS}
    served: dict[str, set[str]] = {host: set() for host in WORKER_HOSTS}
    for worker, sha in rows:
        served[names[worker]].add(sha)
    return served


def _check_host_files(c: Cluster) -> None:
    """Each worker host read what it served through its own cache; no host wrote a model
    directory (everything went to S3)."""
    for host, served in _served_by_host(c).items():
        cached = {p.name for p in c.network.hosts[host].path(CACHE_DIR).iterdir()}
        assert served and served <= cached, (host, served, cached)
    for host in c.network.hosts.values():
        assert not host.path(LOCAL_STORE).exists(), host.name


def _check_serving(c: Cluster) -> None:
    """Health lists the workers of each host; each host's exporter answers on the same port."""
    hosts = {c.hostname(h) for h in WORKER_HOSTS}
    _wait(lambda: hosts <= set(_health_hosts(c.base)), 20, "health lacks a worker host")
    for host in WORKER_HOSTS:
        address = c.network.hosts[host].address
        assert requests.get(f"http://{address}:{METRICS_PORT}/metrics", timeout=5).ok


def _run_and_kill(c: Cluster, workers: dict, headers: dict, work: list) -> tuple[list, list]:
    """Submit everything; once the doomed host has jobs in hand, kill -9 its process group.
    Returns the job ids and the jobs it left `running`."""
    pool, futures = _submit_all(c.base, headers, work)
    _wait(lambda: _both_working(c), 60, lambda: f"a host did no work: {_by_worker()}")
    orphans = _kill_with_jobs_in_hand(c, workers[DOOMED])
    ids = [f.result() for f in futures]
    pool.shutdown()
    return ids, orphans


def _check_jobs(c: Cluster, ids: list[str], orphans: list[str], expected: np.ndarray) -> None:
    jobs = _jobs(ids)
    assert len(jobs) == JOBS and len(set(ids)) == JOBS
    assert {row[0] for row in jobs.values()} == {"succeeded"}, _by_worker(("failed",))
    with session_scope() as s:
        writes = s.execute(text("SELECT count(*), count(DISTINCT job_id) FROM result_writes")).one()
    assert tuple(writes) == (JOBS, JOBS)  # exactly one result per job
    assert [jobs[i][3] for i in ids] == [[int(e)] for e in expected]
    assert orphans, "the kill found no job in hand on the doomed host"
    for job_id in orphans:  # taken over by the host that is left
        status, attempts, worker, _ = jobs[job_id]
        assert (status, worker) == ("succeeded", c.hostname(SURVIVOR)) and attempts >= 2
    assert {row[2] for row in jobs.values()} == {c.hostname(h) for h in WORKER_HOSTS}


def _downloads(c: Cluster) -> dict[str, int]:
    """GETs of each stored object (the hosts' caches keep this to one per host at most)."""
    counts: dict[str, int] = {}
    for method, path, query in c.s3.log.requests:
        if method == "GET" and not query and path.count("/") >= 3:
            counts[path.rsplit("/", 1)[1]] = counts.get(path.rsplit("/", 1)[1], 0) + 1
    return counts


@pytest.mark.timeout(180)  # ~60-90 s; more on a loaded 2-core machine
def test_a_worker_host_killed_mid_run_every_job_succeeds_once(tmp_path, result_writes):
    forests = _forests()
    rows = np.random.default_rng(7).uniform([4, 2, 1, 0], [8, 4.5, 7, 2.5], (JOBS, 4)).round(2)
    picks = [i % MODELS for i in range(JOBS)]
    started = time.monotonic()
    with cluster(tmp_path, WORKER_HOSTS, EVERYWHERE) as c:
        headers = _login(c.base)
        with c.fleet({}), ThreadPoolExecutor(MODELS) as pool:
            metas = list(pool.map(lambda i: _upload(c.base, headers, forests[i], i), range(MODELS)))
        marks = {"validated": time.monotonic() - started}
        assert sorted(m["runtime"] for m in metas) == ["onnx", "sklearn"], metas
        work = [(metas[m]["id"], row.tolist()) for m, row in zip(picks, rows, strict=True)]
        with c.fleet(FAST_RECOVERY) as workers:
            _check_serving(c)
            ids, orphans = _run_and_kill(c, workers, headers, work)
            marks["killed"] = time.monotonic() - started
            _wait(lambda: _finished(ids), 60, lambda: f"jobs left unfinished: {_by_worker()}")
            marks["done"] = time.monotonic() - started
            gone = c.hostname(DOOMED)
            _wait(lambda: gone not in _health_hosts(c.base), 15, "health still lists the dead host")
        _check_host_files(c)
        downloads = _downloads(c)
    _check_jobs(c, ids, orphans, _expected(forests, picks, rows))
    assert max(downloads.values()) <= len(WORKER_HOSTS), downloads
    phases = ", ".join(f"{name} at {t:.0f} s" for name, t in marks.items())
    print(f"multi-host: {len(orphans)} jobs in hand at the kill; {_by_worker()}; {phases}")
    print(f"S3 GETs per object: {downloads}")
