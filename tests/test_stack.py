"""The whole system as the Procfile runs it (honcho: gunicorn web, celery worker, Flower), driven
over real HTTP: readiness with a worker counted, Flower seeing the worker and the queue, and one
prediction through every process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from tests.fixtures.models import dump, fit_classifier
from tests.fixtures.services import log_path

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
FLOWER_AUTH = ("ops", "s3cret-pass")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float, auth=None) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = requests.get(url, timeout=2, auth=auth)
            if resp.status_code < 500:
                return resp
        except requests.ConnectionError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(0.3)


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, str]]:
    port, flower_port = _free_port(), _free_port()
    queue = f"{os.environ['DEFAULT_QUEUE']}-stack"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOST": "127.0.0.1", "PORT": str(port), "FLOWER_PORT": str(flower_port),
        "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH), "DEFAULT_QUEUE": queue,
        "WEB_CONCURRENCY": "1", "WEB_THREADS": "4", "WORKER_CONCURRENCY": "1",
    }  # fmt: skip
    log = open(log_path("stack"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", "Procfile", "web", "worker", "flower"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/api/v1/health/live", 60)
        yield {"api": base, "flower": f"http://127.0.0.1:{flower_port}", "queue": queue}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


def _ready_with_worker(api: str) -> dict:
    deadline = time.monotonic() + 60
    while True:
        body = requests.get(f"{api}/api/v1/health", timeout=5).json()
        if body["checks"]["workers"] >= 1 or time.monotonic() > deadline:
            return body
        time.sleep(0.5)


def test_health_counts_the_worker(stack):
    assert requests.get(f"{stack['api']}/api/v1/health/ready", timeout=5).status_code == 200
    body = _ready_with_worker(stack["api"])
    assert body["status"] == "ok"
    assert body["checks"] == {
        "database": "ok",
        "broker": "ok",
        "workers": body["checks"]["workers"],
    }
    assert body["checks"]["workers"] >= 1


def test_flower_lists_worker_and_queue(stack):
    _ready_with_worker(stack["api"])
    assert requests.get(f"{stack['flower']}/api/workers", timeout=5).status_code == 401
    deadline = time.monotonic() + 30
    while True:
        workers = _wait_http(f"{stack['flower']}/api/workers?refresh=1", 10, FLOWER_AUTH).json()
        if workers or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert workers, "Flower sees no worker"
    queues = requests.get(
        f"{stack['flower']}/api/queues/length", auth=FLOWER_AUTH, timeout=10
    ).json()
    assert stack["queue"] in [q["name"] for q in queues["active_queues"]]


def test_prediction_through_every_process(stack, tmp_path):
    api = stack["api"] + "/api/v1"
    creds = {"email": "stack@example.com", "password": "stack-password-1"}
    assert requests.post(f"{api}/auth/register", json=creds, timeout=5).status_code == 201
    token = requests.post(f"{api}/auth/login", json=creds, timeout=5).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    model = fit_classifier()
    with open(dump(model, tmp_path / "m.joblib"), "rb") as fh:
        meta = requests.post(
            f"{api}/models", files={"file": fh}, data={"name": "stack"}, headers=headers, timeout=30
        ).json()
    assert meta["status"] == "ready", meta
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    resp = requests.post(
        f"{api}/models/{meta['id']}/predict?timeout=10",
        json={"inputs": rows},
        headers=headers,
        timeout=15,
    )
    assert resp.status_code == 200
    assert resp.json()["result"]["predictions"] == model.predict(np.array(rows)).tolist()
