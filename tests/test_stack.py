"""The whole system as the Procfile runs it (honcho: granian web, celery worker, Flower), driven
over real HTTP: readiness with a worker counted, Flower seeing the worker, the queue and the
prediction's task, one prediction through every process, Prometheus metrics summed across web
processes and across the Celery worker's children, and the web process stopping gracefully."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.fixtures.api import create_api_key
from tests.fixtures.models import dump, fit_classifier, insert_ready_model
from tests.fixtures.services import free_port, log_path

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[1]
FLOWER_AUTH = ("ops", "s3cret-pass")


def _wait_http(url: str, timeout: float, auth=None) -> requests.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            resp = requests.get(url, timeout=5, auth=auth)
            if resp.status_code < 500:
                return resp
        except (requests.ConnectionError, requests.Timeout):
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(url)
        time.sleep(0.3)


@pytest.fixture(scope="module")
def stack() -> Iterator[dict[str, str]]:
    port, flower_port, metrics_port = free_port(), free_port(), free_port()
    queue = f"{os.environ['DEFAULT_QUEUE']}-stack"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "FLOWER_PORT": str(flower_port),
        "FLOWER_BASIC_AUTH": ":".join(FLOWER_AUTH),
        "DEFAULT_QUEUE": queue,
        "WEB_CONCURRENCY": "2",
        "WEB_THREADS": "4",
        "WORKER_CONCURRENCY": "1",
        "WORKER_METRICS_PORT": str(metrics_port),
    }
    log = open(log_path("stack"), "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "honcho", "start", "-f", "Procfile", "web", "worker", "flower"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{base}/api/v1/health/live", 60)
        yield {
            "api": base,
            "flower": f"http://127.0.0.1:{flower_port}",
            "queue": queue,
            "worker_metrics": f"http://127.0.0.1:{metrics_port}/metrics",
        }
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


def _queue_names(worker: dict) -> set[str]:
    return {q["name"] for q in worker.get("active_queues") or []}


def test_flower_lists_worker_and_queue(stack):
    _ready_with_worker(stack["api"])
    # Flower may still be starting when this test runs first: retry until it listens.
    assert _wait_http(f"{stack['flower']}/api/workers", 60).status_code == 401
    deadline = time.monotonic() + 30
    while True:  # the stack's own worker (the test session's may be on the same broker)
        workers = _wait_http(f"{stack['flower']}/api/workers?refresh=1", 10, FLOWER_AUTH).json()
        serving = [w for w in workers.values() if _queue_names(w) & {stack["queue"]}]
        if serving or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert serving, f"Flower sees no worker on {stack['queue']}: {list(workers)}"
    names: list[str] = []
    while stack["queue"] not in names and time.monotonic() < deadline + 30:
        queues = requests.get(
            f"{stack['flower']}/api/queues/length", auth=FLOWER_AUTH, timeout=10
        ).json()
        names = [q["name"] for q in queues["active_queues"]]
        time.sleep(0.5)
    assert stack["queue"] in names


def _validated(url: str, headers: dict[str, str], meta: dict, timeout: float = 120) -> dict:
    """The model once validation has finished: the upload answers 202 `validating` when the
    worker takes longer than the upload waits (a loaded machine), so poll the model's GET."""
    deadline = time.monotonic() + timeout
    while meta["status"] == "validating" and time.monotonic() < deadline:
        time.sleep(0.5)
        meta = requests.get(url, headers=headers, timeout=10).json()
    return meta


@pytest.fixture(scope="module")
def prediction(stack, tmp_path_factory) -> dict:
    """One user, one model, one sync prediction through the web server, Redis and the worker."""
    api = stack["api"] + "/api/v1"
    creds = {"email": "stack@example.com", "password": "stack-password-1"}
    assert requests.post(f"{api}/auth/register", json=creds, timeout=5).status_code == 201
    token = requests.post(f"{api}/auth/login", json=creds, timeout=5).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    model = fit_classifier()
    path = dump(model, tmp_path_factory.mktemp("stack") / "m.joblib")
    with open(path, "rb") as fh:
        meta = requests.post(
            f"{api}/models", files={"file": fh}, data={"name": "stack"}, headers=headers, timeout=30
        ).json()
    meta = _validated(f"{api}/models/{meta['id']}", headers, meta)
    assert meta["status"] == "ready", meta
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]
    resp = requests.post(
        f"{api}/models/{meta['id']}/predict?timeout=60",  # the most it waits: a loaded machine
        json={"inputs": rows},
        headers=headers,
        timeout=75,
    )
    return {"model": model, "meta": meta, "rows": rows, "resp": resp, "headers": headers}


def test_prediction_through_every_process(prediction):
    resp, rows = prediction["resp"], prediction["rows"]
    assert resp.status_code == 200
    assert (
        resp.json()["result"]["predictions"] == prediction["model"].predict(np.array(rows)).tolist()
    )


def _scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = requests.get(url, timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _total(samples, name: str, **labels) -> float:
    wanted = set(labels.items())
    return sum(v for (n, lbls), v in samples.items() if n == name and wanted <= set(lbls))


def test_web_metrics_sum_every_web_process(stack, prediction):
    route = "/api/v1/health/live"
    before = _total(_scrape(f"{stack['api']}/metrics"), "mlsp_http_requests_total", route=route)
    for _ in range(10):  # two web processes: the answers are spread over both
        requests.get(f"{stack['api']}{route}", timeout=5)
    samples = _scrape(f"{stack['api']}/metrics")
    assert _total(samples, "mlsp_http_requests_total", route=route) == before + 10
    predict_route = "/api/v1/models/<string:ref>/predict"
    assert _total(samples, "mlsp_http_requests_total", route=predict_route, status="200") == 1
    assert _total(samples, "mlsp_queue_depth", queue=stack["queue"]) == 0


def test_worker_metrics_from_its_children(stack, prediction):
    """The prediction ran in a prefork child; the main process's exporter reports it."""
    assert prediction["resp"].status_code == 200
    deadline = time.monotonic() + 10
    while True:
        samples = _scrape(stack["worker_metrics"])
        if _total(samples, "mlsp_model_cache_misses_total") >= 1 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert _total(samples, "mlsp_model_cache_misses_total") >= 1
    assert _total(samples, "mlsp_model_cache_entries") >= 1


def test_flower_shows_the_prediction_task(stack, prediction):
    """An operator finds a job's task in Flower by its model id: the validation's argument, and
    the drain task's result (the models it served and the first job ids)."""
    model_id = prediction["meta"]["id"]
    deadline = time.monotonic() + 20
    while True:
        tasks = requests.get(
            f"{stack['flower']}/api/tasks", params={"limit": 200}, auth=FLOWER_AUTH, timeout=10
        ).json()
        mine = [
            t for t in tasks.values() if model_id in (t.get("args") or "") + (t.get("result") or "")
        ]
        names = {t["name"] for t in mine}
        if {"mlsp.validate_model"} < names or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert "mlsp.validate_model" in names
    assert names & {"mlsp.drain_model", "mlsp.predict_jobs"}, names
    assert all(t["state"] == "SUCCESS" for t in mine)


def test_web_answers_requests_in_flight_when_stopped(client, user, tmp_path):
    """SIGTERM (a deploy, `docker stop`) while a sync prediction is waiting: the request still
    gets its answer (here 202 with the job, as no worker serves this queue), then the process
    exits cleanly and has removed its metrics directory."""
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    key = create_api_key(client, user)["key"]
    port, metrics = free_port(), tmp_path / "metrics"
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_THREADS": "2",
        "DEFAULT_QUEUE": f"{os.environ['DEFAULT_QUEUE']}-stop",
        "METRICS_DIR": str(metrics),
    }
    with open(log_path("web-stop"), "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "web.serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            base = f"http://127.0.0.1:{port}"
            _wait_http(f"{base}/api/v1/health/live", 30)
            assert len(list(metrics.iterdir())) == 1
            pending = ThreadPoolExecutor(1).submit(
                requests.post,
                f"{base}/api/v1/models/{model_id}/predict?timeout=3",
                json={"inputs": [[5.1, 3.5, 1.4, 0.2]]},
                headers={"X-API-Key": key},
                timeout=20,
            )
            time.sleep(1)
            proc.send_signal(signal.SIGTERM)
            resp = pending.result()
            assert resp.status_code == 202 and resp.json()["status"] == "queued"
            assert proc.wait(15) == 0
            assert list(metrics.iterdir()) == []
        finally:
            if proc.poll() is None:
                proc.kill()
