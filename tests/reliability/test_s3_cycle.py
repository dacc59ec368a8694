"""The artifact store on S3 end to end: a real S3 API server on the loopback (moto), a real web
server process and real worker processes, each "host" with a local cache of its own and no
shared directory. Upload -> validate -> predict -> a batch file in and out -> delete -> purge;
a restarted worker loads the model from its host's cache without a download."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import boto3
import joblib
import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.linear_model import LogisticRegression

from shared.celery_config import PURGE_ARTIFACTS, create_producer
from shared.config import Settings
from tests.fixtures.api import PASSWORD
from tests.fixtures.s3 import CREDENTIALS, CountingMotoServer, make_bucket, s3_server
from tests.fixtures.services import celery_worker
from tests.fixtures.webserver import wait_serving, web_server

pytestmark = pytest.mark.e2e
BUCKET = "mlsp-cycle"
PREFIX = "models"
COLUMNS = ["a", "b", "c", "d"]


def _wait(predicate, timeout: float, message: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, message
        time.sleep(0.2)
    return value


def _login(base: str) -> dict[str, str]:
    email = f"s3-{time.monotonic_ns()}@example.com"
    body = {"email": email, "password": PASSWORD}
    assert requests.post(f"{base}/api/v1/auth/register", json=body, timeout=10).status_code == 201
    tokens = requests.post(f"{base}/api/v1/auth/login", json=body, timeout=10).json()
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def _model() -> tuple[LogisticRegression, pd.DataFrame]:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(rng.normal(size=(200, 4)), columns=COLUMNS)
    return LogisticRegression().fit(frame, (frame["a"] + frame["b"] > 0).astype(int)), frame


def _objects(s3: CountingMotoServer) -> set[str]:
    client = boto3.client("s3", endpoint_url=s3.endpoint, **_boto_credentials())
    listed = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/")
    return {item["Key"].removeprefix(f"{PREFIX}/") for item in listed.get("Contents", [])}


def _boto_credentials() -> dict[str, str]:
    return {
        "aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "region_name": CREDENTIALS["AWS_DEFAULT_REGION"],
    }


def _downloads(s3: CountingMotoServer, model_id: str) -> int:
    """GETs of any object of the model (its upload, its compiled ONNX graph)."""
    return sum(1 for m, path, _ in s3.log.requests if m == "GET" and model_id in path)


def _host_env(s3: CountingMotoServer, tmp_path: Path, host: str, queue: str) -> dict[str, str]:
    """A process on a host of its own: its own cache, no model directory to share."""
    return {
        **os.environ,
        **CREDENTIALS,
        "DEFAULT_QUEUE": queue,
        "ARTIFACT_STORE_URL": f"s3://{BUCKET}/{PREFIX}",
        "S3_ENDPOINT_URL": s3.endpoint,
        "ARTIFACT_CACHE_DIR": str(tmp_path / host / "cache"),
        "MODEL_STORE_DIR": str(tmp_path / host / "unused-store"),
        "ARTIFACT_GRACE_S": "0",
        "BATCH_CHUNK_ROWS": "50",
    }


def _predict(base: str, headers: dict[str, str], model_id: str, rows: list) -> list:
    resp = requests.post(
        f"{base}/api/v1/models/{model_id}/predict?timeout=30",
        json={"inputs": rows},
        headers=headers,
        timeout=40,
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["result"]["predictions"]


def _upload(base: str, headers: dict[str, str], model, tmp_path: Path) -> dict:
    path = tmp_path / "model.joblib"
    joblib.dump(model, path)
    with open(path, "rb") as fh:
        resp = requests.post(
            f"{base}/api/v1/models",
            files={"file": ("model.joblib", fh)},
            data={"name": "s3-cycle"},
            headers=headers,
            timeout=60,
        )
    assert resp.status_code in (201, 202), resp.text
    model_id = resp.json()["id"]
    return _wait(lambda: _ready(base, headers, model_id), 60, "validation did not finish")


def _ready(base: str, headers: dict[str, str], model_id: str) -> dict | None:
    body = requests.get(f"{base}/api/v1/models/{model_id}", headers=headers, timeout=10).json()
    assert body["status"] in ("validating", "ready"), body
    return body if body["status"] == "ready" else None


def _batch(base: str, headers: dict[str, str], model_id: str, frame: pd.DataFrame) -> bytes:
    resp = requests.post(
        f"{base}/api/v1/models/{model_id}/batches",
        files={"file": ("rows.csv", frame.to_csv(index=False).encode())},
        headers=headers,
        timeout=30,
    )
    assert resp.status_code == 202, resp.text
    url = f"{base}/api/v1/batches/{resp.json()['id']}"

    def finished() -> dict | None:
        body = requests.get(url, headers=headers, timeout=10).json()
        return body if body["status"] not in ("queued", "running") else None

    assert _wait(finished, 60, "the batch did not finish")["status"] == "succeeded"
    result = requests.get(f"{url}/result", headers=headers, timeout=30)
    assert result.status_code == 200, result.text
    return result.content


def test_upload_validate_predict_batch_delete_purge_on_s3(tmp_path):
    model, frame = _model()
    rows = frame.iloc[:5].to_dict(orient="records")
    queue = f"{os.environ['DEFAULT_QUEUE']}-s3"
    with s3_server() as s3:
        make_bucket(s3, BUCKET)
        web_env = _host_env(s3, tmp_path, "web", queue)
        worker_env = _host_env(s3, tmp_path, "worker", queue)
        with web_server(web_env, name="web-s3") as base:
            with celery_worker(env=worker_env, name="s3-a"):
                wait_serving(base)
                headers = _login(base)
                meta = _upload(base, headers, model, tmp_path)
                model_id = meta["id"]
                assert _predict(base, headers, model_id, rows) == model.predict(frame[:5]).tolist()
            stored = _objects(s3)
            assert f"{model_id}.joblib" in stored
            for host in ("web", "worker"):  # nothing written to a local model directory
                assert not (tmp_path / host / "unused-store").exists() or not any(
                    (tmp_path / host / "unused-store").iterdir()
                )
            assert (tmp_path / "worker" / "cache" / meta["sha256"]).is_file()
            downloads = _downloads(s3, model_id)
            assert downloads >= 1

            # A new worker on the same host: an empty model cache in every process, the
            # host's artifact cache full. It serves the batch queue too.
            with celery_worker(env=worker_env, name="s3-b", queue=f"{queue},{queue}.batches"):
                assert _predict(base, headers, model_id, rows) == model.predict(frame[:5]).tolist()
                assert _downloads(s3, model_id) == downloads

                out = pd.read_csv(io.BytesIO(_batch(base, headers, model_id, frame[:120])))
                assert out["prediction"].tolist() == model.predict(frame[:120]).tolist()
                assert {k for k in _objects(s3) if ".result." in k or ".input." in k}

                resp = requests.delete(
                    f"{base}/api/v1/models/{model_id}", headers=headers, timeout=10
                )
                assert resp.status_code == 204, resp.text
                assert f"{model_id}.joblib" in _objects(s3)  # kept for ARTIFACT_GRACE_S
                create_producer(Settings(DEFAULT_QUEUE=queue)).send_task(PURGE_ARTIFACTS)
                _wait(
                    lambda: not [k for k in _objects(s3) if k.startswith(model_id)],
                    30,
                    "the purge left the model's objects",
                )
