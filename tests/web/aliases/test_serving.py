"""Predictions by name end to end (web + a real worker + PostgreSQL + Redis): which version
answers and how it was chosen, an alias moved under load in two web processes, traffic splits
and sticky routing, shadow copies kept in the history but never answered, and OIP by alias."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from sklearn.linear_model import LogisticRegression

from shared import queueing
from shared.config import get_settings
from shared.redis_client import get_redis
from shared.signals import reply_key
from tests.fixtures.models import fit_classifier, fit_regressor, iris
from tests.fixtures.services import free_port, log_path, stop_process_group
from tests.web.aliases.helpers import by_name, insert_version, predict, set_alias, set_traffic
from tests.web.jobs.calls import ROWS, poll

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker")]


def fit_other() -> LogisticRegression:
    """A second version of the iris classifier that answers differently on some rows."""
    x, y = iris()
    return LogisticRegression(C=0.001, max_iter=500).fit(x, y)


@pytest.fixture
def churn(user, tmp_path) -> dict[int, str]:
    return {
        1: insert_version(user, fit_classifier(), tmp_path, "churn", 1),
        2: insert_version(user, fit_other(), tmp_path, "churn", 2),
    }


def _answer(client, user, ref, **headers) -> dict:
    resp = predict(client, user, ref, ROWS, **headers)
    assert resp.status_code == 200, resp.json
    return resp.json


def test_versions_and_routes_by_reference(client, user, churn):
    assert _answer(client, user, "churn")["model_version"] == 2  # the newest ready version
    set_alias(client, user, "churn", "production", 1)
    cases = {
        "churn": (1, "alias"),  # production wins over the newest version
        "churn@production": (1, "alias"),
        "churn@latest": (2, "alias"),
        "churn@v2": (2, "explicit"),
        churn[2]: (2, "explicit"),
    }
    for ref, expected in cases.items():
        job = _answer(client, user, ref)
        assert (job["model_version"], job["route"]) == expected, ref
        assert job["model_id"] == churn[job["model_version"]]
    queued = client.post(
        "/api/v1/models/churn@production/jobs", json={"inputs": ROWS}, headers=user.headers
    )
    assert queued.status_code == 202
    done = poll(client, user, queued.json["id"]).json
    assert (done["status"], done["model_version"], done["route"]) == ("succeeded", 1, "alias")
    expected = fit_classifier().predict(np.array(ROWS)).tolist()
    assert done["result"]["predictions"] == expected


def test_oip_by_alias(client, user, churn):
    set_alias(client, user, "churn", "staging", 1)
    body = {
        "inputs": [{"name": "input-0", "shape": [len(ROWS), 4], "datatype": "FP64", "data": ROWS}]
    }
    resp = client.post("/v2/models/churn@staging/infer", json=body, headers=user.headers)
    assert resp.status_code == 200, resp.json
    assert resp.json["model_version"] == "1"
    meta = client.get("/v2/models/churn@staging", headers=user.headers).json
    assert meta["parameters"]["version"] == "1"
    bare = client.post("/v2/models/churn/infer", json=body, headers=user.headers)
    assert bare.json["model_version"] == "2"  # no production alias: the newest ready version
    assert client.get("/v2/models/churn@nope", headers=user.headers).status_code == 404


@pytest.fixture
def second_web() -> Iterator[str]:
    """Another web process on the same database and Redis: its own caches in its own memory."""
    port = free_port()
    script = (
        "from werkzeug.serving import run_simple; from web import create_app; "
        f"run_simple('127.0.0.1', {port}, create_app(), threaded=True)"
    )
    with open(log_path("aliases-web"), "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=Path(__file__).resolve().parents[3],
            env=os.environ.copy(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{url}/api/v1/health/live", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "web did not start"
            time.sleep(0.2)
        yield url
    finally:
        stop_process_group(proc)


def test_alias_move_under_load_in_two_processes(client, user, churn, second_web):
    set_alias(client, user, "churn", "production", 1)
    url = f"{second_web}/api/v1/models/churn@production/predict"

    def remote() -> tuple[int, int | None]:
        resp = requests.post(url, json={"inputs": ROWS}, headers=user.headers, timeout=30)
        return resp.status_code, resp.json().get("model_version")

    assert remote() == (200, 1)  # the other process has resolved (and cached) version 1
    answers: list[tuple[float, int, int | None]] = []
    stop = threading.Event()

    def load() -> None:
        while not stop.is_set():
            started = time.monotonic()
            answers.append((started, *remote()))

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        while len(answers) < 15:
            time.sleep(0.01)
        assert set_alias(client, user, "churn", "production", 2).status_code == 200
        moved_at = time.monotonic()
        assert remote() == (200, 2)  # at once, in the other process too
        count = len(answers)
        while len(answers) < count + 15:
            time.sleep(0.01)
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert {status for _, status, _ in answers} == {200}
    assert {version for _, _, version in answers} == {1, 2}
    assert all(version == 2 for started, _, version in answers if started > moved_at)


def test_traffic_split_and_sticky_routing(client, user, churn):
    assert set_traffic(client, user, "churn", {1: 50, 2: 50}).status_code == 200
    versions = [_answer(client, user, "churn")["model_version"] for _ in range(24)]
    assert set(versions) == {1, 2}  # 24 fair coins all alike: odds 1.2e-7
    for key in ("customer-1", "customer-2", "customer-3"):
        sticky = {
            _answer(client, user, "churn", **{"X-Routing-Key": key})["model_version"]
            for _ in range(4)
        }
        assert len(sticky) == 1, key
    job = _answer(client, user, "churn")
    assert job["route"] == "traffic"
    assert _answer(client, user, "churn@v1")["route"] == "explicit"  # a version is no split


def _wait_for(condition, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)
    return found


def _jobs(client, user, model_id: str) -> list[dict]:
    resp = client.get(f"/api/v1/jobs?model_id={model_id}&per_page=100", headers=user.headers)
    return resp.json["items"]


def test_shadow_is_stored_never_answered_and_never_waited_for(client, user, churn):
    """The shadow's model is held off (marked scheduled, but in no ready list: no drainer ever
    takes it): an infinitely slow shadow. The caller's answers come from version 1 all the
    same; once released, the copies run."""
    assert set_traffic(client, user, "churn", {1: 100}, shadow=(2, 100)).status_code == 200
    redis = get_redis()
    held = queueing.ring_key(get_settings().default_queue, f"sched:{churn[2]}")
    redis.set(held, "held", ex=120)
    v1 = fit_classifier().predict(np.array(ROWS)).tolist()
    primaries = []
    for _ in range(4):
        job = _answer(client, user, "churn")
        assert (job["model_version"], job["route"], job["status"]) == (1, "traffic", "succeeded")
        assert job["result"]["predictions"] == v1
        primaries.append(job["id"])
    pending = queueing.pending_key(churn[2])
    _wait_for(lambda: redis.llen(pending) == 4)  # copied, waiting: nobody waited on them

    redis.delete(held)
    primaries.append(_answer(client, user, "churn")["id"])  # this push schedules it
    shadows = _wait_for(
        lambda: (found := _jobs(client, user, churn[2])) and len(found) == 5 and found
    )
    assert {s["shadow_of"] for s in shadows} == set(primaries)
    assert {(s["route"], s["model_version"], s["status"]) for s in shadows} == {
        ("shadow", 2, "succeeded")
    }
    other = fit_other().predict(np.array(ROWS)).tolist()
    assert all(s["result"]["predictions"] == other for s in shadows)
    assert not any(redis.exists(reply_key("job", s["id"])) for s in shadows)  # nobody waits
    listed = client.get("/api/v1/jobs?route=shadow", headers=user.headers).json["items"]
    assert {j["id"] for j in listed} == {s["id"] for s in shadows}

    analytics = client.get(f"{by_name('churn')}/analytics", headers=user.headers).json
    assert analytics["versions"]["2"]["total"] == 5 and analytics["versions"]["1"]["total"] == 5
    (pair,) = analytics["shadow"]
    agree = sum(a == b for a, b in zip(v1, other, strict=True)) / len(v1)
    assert (pair["shadow_version"], pair["primary_version"], pair["jobs"]) == (2, 1, 5)
    assert pair["rows"] == 5 * len(ROWS) and pair["agreement"] == pytest.approx(agree)


def test_a_failing_shadow_changes_nothing_for_the_caller(client, user, churn, tmp_path):
    """Version 3 takes three features: every copy is refused before it is queued."""
    insert_version(user, fit_regressor(), tmp_path, "churn", 3)
    assert set_traffic(client, user, "churn", {1: 100}, shadow=(3, 100)).status_code == 200
    for _ in range(3):
        job = _answer(client, user, "churn")
        assert (job["model_version"], job["status"]) == (1, "succeeded")
    from web.aliases import shadow

    _wait_for(lambda: shadow._pending._value == shadow.MAX_PENDING)  # the pool is idle
    history = client.get("/api/v1/jobs?per_page=100", headers=user.headers).json["items"]
    assert {j["model_version"] for j in history} == {1}
