"""The validation sandbox itself: what its process holds, what a confined child can do, its wall
clock, random tree mutations, and the reaper for models whose validation never ended."""

from __future__ import annotations

import io
import json
import os
import socket
import time

import joblib
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.ensemble import RandomForestClassifier

from shared.celery_config import REAP_MODELS, create_producer
from shared.config import Settings
from shared.redis_client import get_redis
from tests.fixtures.models import fit_classifier, iris, upload
from tests.fixtures.services import isolated
from tests.security.test_upload_models import _mutated_tree
from workers.validation.sandbox import Limits, Sandbox
from workers.validation.sandbox_child import confine

REQUEST = {
    "format": "joblib",
    "sample": None,
    "compile": {
        "onnx_enabled": False,
        "onnx_proba_atol": 1e-6,
        "onnx_regression_rtol": 1e-6,
        "onnx_max_model_mb": 64,
        "budget_s": 5,
    },
}
LIMITS = Limits(memory_mb=1024, cpu_s=20, wall_s=20)


def _joblib_bytes(model: object) -> bytes:
    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sandbox():
    box = Sandbox()
    yield box
    box._stop()


@pytest.mark.no_db
def test_sandbox_process_has_no_secrets_and_an_empty_directory(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "s" * 40)
    monkeypatch.setenv("JWT_SECRET_KEY", "j" * 40)
    box = Sandbox()
    try:
        answer, _ = box.run(REQUEST, _joblib_bytes(fit_classifier()), LIMITS, 1 << 20)
        assert answer["ok"], answer
        pid = box._proc.pid
        with open(f"/proc/{pid}/environ", "rb") as f:
            environ = f.read().decode()
        for name in ("SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL", "REDIS_URL"):
            assert f"{name}=" not in environ
        assert os.listdir(f"/proc/{pid}/cwd") == []
    finally:
        box._stop()


@pytest.mark.no_db
def test_confined_child_cannot_write_allocate_or_connect(tmp_path):
    """What the child of an upload can do after confine(): checked from inside, reported over
    a pipe (256 MB over its own size, here)."""
    reader, writer = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports, the parent asserts
        os.close(reader)
        report = {}
        try:
            confine({"memory_mb": 256, "cpu_s": 10, "wall_s": 10})
            report["write"] = _attempt(lambda: (tmp_path / "x").write_bytes(b"x" * 10))
            report["allocate"] = _attempt(lambda: np.ones(1 << 27))  # 1 GiB
            report["connect"] = _attempt(lambda: socket.create_connection(("127.0.0.1", 6379), 1))
            report["parent_environ"] = _attempt(lambda: _read(f"/proc/{os.getppid()}/environ"))
            report["uid"] = os.getuid()
        finally:
            os.write(writer, json.dumps(report).encode())
            os._exit(0)
    os.close(writer)
    os.waitpid(pid, 0)
    report = json.loads(os.read(reader, 65536))
    assert report["write"] != "ok" and report["allocate"] == "MemoryError"
    assert report["connect"] != "ok"
    if os.getuid() == 0:  # confined to nobody: the worker's own files are out of reach
        assert report["uid"] == 65534 and report["parent_environ"] != "ok"


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _attempt(action) -> str:
    try:
        action()
    except BaseException as exc:
        return type(exc).__name__
    return "ok"


@pytest.mark.no_db
def test_validation_past_its_wall_clock_is_killed(sandbox):
    x, y = iris()
    forest = RandomForestClassifier(300, random_state=0).fit(x, y)
    started = time.monotonic()
    answer, _ = sandbox.run(REQUEST, _joblib_bytes(forest), Limits(1024, 20, 0.05), 1 << 20)
    assert answer == {"ok": False, "error": "validation took longer than 0.05 s"}
    assert time.monotonic() - started < 10  # killed: far below its 20 s CPU limit (loaded: ~5 s)
    answer, _ = sandbox.run(REQUEST, _joblib_bytes(fit_classifier()), LIMITS, 1 << 20)
    assert answer["ok"]  # the sandbox goes on serving


NODE_FIELDS = ("left_child", "right_child", "feature", "threshold")


@pytest.mark.no_db
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from(NODE_FIELDS),
    index=st.integers(0, 6),
    value=st.one_of(
        st.integers(-3, 20), st.sampled_from([2**31 - 1, -(2**31)]), st.just(float("nan"))
    ),
)
def test_mutated_tree_is_refused_or_answered_in_bounded_time(sandbox, field, index, value):
    """Any one change to a tree's node arrays: refused by the audit, or validated normally;
    never a crash, a hang or a kill."""
    if field != "threshold" and isinstance(value, float):
        value = -1
    data = _joblib_bytes(_mutated_tree(field, index, value))
    answer, _ = sandbox.run(REQUEST, data, Limits(1024, 10, 10), 1 << 20)
    if not answer["ok"]:
        error = answer["error"]
        assert not error.startswith(("validation took", "validation crashed", "validation was"))
        assert "tree" in error or "model failed to predict" in error, error


@pytest.mark.e2e
def test_model_whose_validation_task_was_lost_is_validated_by_the_reaper(user, tmp_path):
    """The upload's task vanished (Redis restarted empty): the model would stay `validating`
    forever. The reaper sends it again once it is older than MODEL_STUCK_AFTER_S."""
    stack = isolated(MODEL_STUCK_AFTER_S=1, VALIDATION_WAIT_S=0)
    path = tmp_path / "m.joblib"
    joblib.dump(fit_classifier(), path)
    model = upload(stack.client, user, path).json
    assert model["status"] == "validating"
    redis = get_redis()
    for key in redis.scan_iter(f"{stack.name}*"):
        redis.delete(key)  # the broker's copy of the queue: the task is gone
    time.sleep(1.5)
    with stack.worker():
        producer = create_producer(Settings(**stack.env))
        producer.send_task(REAP_MODELS, queue=stack.name)
        deadline = time.monotonic() + 30
        while model["status"] == "validating" and time.monotonic() < deadline:
            time.sleep(0.2)
            model = stack.client.get(f"/api/v1/models/{model['id']}", headers=user.headers).json
    assert model["status"] == "ready", model
