"""Issue 18, finding 7: waiting requests are capped per user and per web process.

40 concurrent `GET /jobs/{id}?wait=60` of one free account held all 32 web threads; other
users' requests and `/health/live` took 58 s. Here a real granian server (1 process, 8 request
threads: 4 wait slots, MAX_WAITS_PER_USER=3) on a queue no worker serves, so every wait runs
its full length: past the caps, long-polls and OIP infers get 429 at once, a sync predict its
202, and the probe answers while the slots are held.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from tests.fixtures.api import create_api_key, register_and_login
from tests.fixtures.models import fit_classifier, insert_ready_model
from tests.fixtures.services import free_port, log_path

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 4
ROW = [5.1, 3.5, 1.4, 0.2]
FAST_S = 1.5  # a refused or probe request; a held one takes WAIT_S


@pytest.fixture
def server():
    port = free_port()
    env = {
        **os.environ,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "1",
        "WEB_THREADS": "8",
        "MAX_WAITS_PER_USER": "3",
        "DEFAULT_QUEUE": f"{os.environ['DEFAULT_QUEUE']}-waits",
    }
    with open(log_path("web-waits"), "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "web.serve"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    requests.get(f"{base}/api/v1/health/live", timeout=2)
                    break
                except requests.ConnectionError:
                    assert time.monotonic() < deadline, "web server did not start"
                    time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            proc.wait(40)


def _tenant(client, tmp_path, name: str) -> tuple[dict[str, str], str]:
    account = register_and_login(client)
    model_id = insert_ready_model(account, fit_classifier(), tmp_path, name=name)
    return {"X-API-Key": create_api_key(client, account)["key"]}, model_id


def _timed(method: str, url: str, **kwargs) -> tuple[int, float, requests.Response]:
    started = time.monotonic()
    resp = requests.request(method, url, timeout=WAIT_S + 20, **kwargs)
    return resp.status_code, time.monotonic() - started, resp


def _queued_job(base: str, headers: dict[str, str], model_id: str) -> str:
    resp = requests.post(
        f"{base}/api/v1/models/{model_id}/jobs", json={"inputs": [ROW]}, headers=headers, timeout=10
    )
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def test_waits_past_the_caps_are_refused_fast_and_the_probe_answers(client, server, tmp_path):
    (a, model_a), (b, model_b), (c, model_c) = (
        _tenant(client, tmp_path, n) for n in ("wa", "wb", "wc")
    )
    job_a, job_b = _queued_job(server, a, model_a), _queued_job(server, b, model_b)
    pool = ThreadPoolExecutor(8)
    poll = "GET", f"{server}/api/v1/jobs/{{}}?wait={WAIT_S}"
    first = [pool.submit(_timed, poll[0], poll[1].format(job_a), headers=a) for _ in range(5)]
    time.sleep(0.5)  # A holds its 3 (per-user cap); then B finds 1 of the 4 slots left
    second = [pool.submit(_timed, poll[0], poll[1].format(job_b), headers=b) for _ in range(3)]
    time.sleep(0.5)
    live = _timed("GET", f"{server}/api/v1/health/live")
    predict = _timed(
        "POST",
        f"{server}/api/v1/models/{model_c}/predict?timeout=10",
        json={"inputs": [ROW]},
        headers=c,
    )
    tensor = {"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}
    infer = _timed("POST", f"{server}/v2/models/wc/infer", headers=c, json={"inputs": [tensor]})
    answers_a, answers_b = [f.result() for f in first], [f.result() for f in second]

    assert live[0] == 200 and live[1] < FAST_S, live[:2]
    assert predict[0] == 202 and predict[1] < FAST_S, predict[:2]  # accepted, not waited on
    assert predict[2].json()["status"] == "queued" and predict[2].headers["Location"]
    assert infer[0] == 429 and infer[1] < FAST_S and infer[2].headers["Retry-After"] == "1"
    assert "error" in infer[2].json() and isinstance(infer[2].json()["error"], str)
    for answers, held in ((answers_a, 3), (answers_b, 1)):
        codes = sorted(code for code, _, _ in answers)
        assert codes == [200] * held + [429] * (len(answers) - held), codes
        refused = [(s, r) for code, s, r in answers if code == 429]
        assert all(s < FAST_S for s, _ in refused), [s for s, _ in refused]
        assert all(r.headers["Retry-After"] == "1" for _, r in refused)
        assert all(r.json()["error"]["code"] == "too_many_waits" for _, r in refused)
        assert all(s >= WAIT_S - 1 for code, s, _ in answers if code == 200)
    slowest_refusal = max(s for code, s, _ in answers_a + answers_b if code == 429)
    print(
        f"8 concurrent long-polls (cap 3/user, 4/process): 4 held {WAIT_S} s, 4 got 429 "
        f"(slowest {slowest_refusal * 1000:.0f} ms); /health/live {live[1] * 1000:.0f} ms; "
        f"predict past the cap 202 in {predict[1] * 1000:.0f} ms; infer 429 in "
        f"{infer[1] * 1000:.0f} ms"
    )
