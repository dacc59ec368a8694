"""Issue 18, finding 6 (last part): every worker child runs under a memory cap (RLIMIT_AS,
WORKER_MEMORY_LIMIT_MB). A prediction that allocates past it fails its job (`out_of_memory`);
the worker lives on and the next job succeeds. Real worker process."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from sklearn.neighbors import KNeighborsClassifier

from shared.db import session_scope
from shared.jobs import Job
from tests.fixtures.models import fit_classifier, insert_ready_model
from tests.fixtures.services import isolated

pytestmark = pytest.mark.e2e
LIMIT_MB = 1200  # a child measured ~560 MiB of address space after its imports


def _wait_final(job_id: str, timeout: float) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as s:
            job = s.get(Job, job_id)
            s.expunge(job)
        if job.status in ("succeeded", "failed") or time.monotonic() > deadline:
            return job
        time.sleep(0.1)


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _status(pid: int, field: str) -> int:
    line = next(
        li for li in Path(f"/proc/{pid}/status").read_text().splitlines() if li.startswith(field)
    )
    return int(line.split()[1])  # kB


@pytest.mark.filterwarnings("ignore:The number of unique classes")
def test_a_prediction_past_the_memory_cap_fails_its_job_and_the_worker_lives_on(user, tmp_path):
    # One class per training row: predict_proba of 8,000 rows is an 8,000 x 20,000 float64
    # matrix (1.2 GiB), past the cap; the fit is instant (the rows are only stored).
    x = np.random.default_rng(0).normal(size=(20_000, 4))
    greedy = KNeighborsClassifier(n_neighbors=1).fit(x, np.arange(20_000))
    big = insert_ready_model(user, greedy, tmp_path, name="greedy")
    small = insert_ready_model(user, fit_classifier(), tmp_path, name="small")
    stack = isolated(WORKER_MEMORY_LIMIT_MB=LIMIT_MB)
    rows = np.random.default_rng(1).normal(size=(8_000, 4)).round(3).tolist()
    with stack.worker(concurrency=1, name="memcap") as proc:
        (child,) = _children(proc.pid)
        limits = Path(f"/proc/{child}/limits").read_text()
        assert f"Max address space         {LIMIT_MB * 1024 * 1024}" in limits, limits
        resp = stack.client.post(
            f"/api/v1/models/{big}/jobs",
            headers=user.headers,
            json={"inputs": rows, "return_probabilities": True},
        )
        hog = _wait_final(resp.json["id"], 30)
        resp = stack.client.post(
            f"/api/v1/models/{small}/jobs",
            headers=user.headers,
            json={"inputs": [[5.1, 3.5, 1.4, 0.2]]},
        )
        after = _wait_final(resp.json["id"], 15)
        assert _children(proc.pid) == [child]  # the same child: not killed, not replaced
        vm_size_mb = _status(child, "VmSize") / 1024
    assert hog.status == "failed" and hog.error_code == "out_of_memory", hog.error_message
    assert f"WORKER_MEMORY_LIMIT_MB={LIMIT_MB}" in hog.error_message
    assert hog.attempts == 1
    assert after.status == "succeeded", after.error_message
    print(
        f"1.2 GiB allocation under a {LIMIT_MB} MiB cap: out_of_memory in {hog.total_ms:.0f} ms;"
        f" next job succeeded in {after.total_ms:.0f} ms; child VmSize {vm_size_mb:.0f} MiB"
    )
