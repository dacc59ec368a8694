"""Batches end to end: a CSV or Parquet file in, predicted in chunks by the real batch worker,
a result file out in input order, equal to the local model's answers; bad cells fail their own
rows; refused files create nothing."""

from __future__ import annotations

import io
import time

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shared.batches import Batch
from shared.db import session_scope
from tests.fixtures.models import upload_ready

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker", "batch_worker")]

RNG = np.random.default_rng(11)
N = 450  # five chunks of 100 rows (the batch worker's BATCH_CHUNK_ROWS)


def _frame(n: int = N) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "id": [f"c{i:04d}" for i in range(n)],
            "fee": RNG.normal(50, 15, n).round(2),
            "plan": RNG.choice(["basic", "pro", "team"], n),
        }
    )
    frame.loc[::9, "fee"] = np.nan
    return frame


def _model():
    frame = _frame(300)
    pre = make_column_transformer(
        (make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["fee"]),
        (OneHotEncoder(handle_unknown="ignore"), ["plan"]),
    )
    y = np.where(frame["fee"].fillna(50) > 50, "high", "low")
    return make_pipeline(pre, LogisticRegression()).fit(frame[["fee", "plan"]], y)


@pytest.fixture(scope="module")
def model():
    return _model()


def _submit(client, user, model_id, data: bytes, filename: str, **fields):
    form = {"file": (io.BytesIO(data), filename), **{k: str(v) for k, v in fields.items()}}
    return client.post(
        f"/api/v1/models/{model_id}/batches",
        data=form,
        headers=user.headers,
        content_type="multipart/form-data",
    )


def _finished(client, user, batch_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = client.get(f"/api/v1/batches/{batch_id}", headers=user.headers).json
        if body["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return body
        time.sleep(0.2)


def _result(client, user, batch_id: str, fmt: str) -> pd.DataFrame:
    resp = client.get(f"/api/v1/batches/{batch_id}/result", headers=user.headers)
    assert resp.status_code == 200, resp.json
    if fmt == "parquet":
        return pq.read_table(io.BytesIO(resp.data)).to_pandas()
    return pd.read_csv(io.BytesIO(resp.data), keep_default_na=False, na_values=[""])


@pytest.mark.parametrize(("fmt", "out"), [("csv", "csv"), ("parquet", "csv"), ("csv", "parquet")])
def test_a_file_in_a_result_file_out(client, user, model, tmp_path, fmt, out):
    meta = upload_ready(client, user, model, tmp_path, name=f"churn-{fmt}-{out}")
    frame = _frame()
    if fmt == "csv":
        data = frame.to_csv(index=False).encode()
    else:
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
        data = sink.getvalue()
    resp = _submit(
        client,
        user,
        meta["id"],
        data,
        f"in.{fmt}",
        output_format=out,
        keep_columns="id",
        return_probabilities="true",
    )
    assert resp.status_code == 202, resp.json
    assert resp.headers["Location"] == f"/api/v1/batches/{resp.json['id']}"
    assert resp.json["status"] == "queued" and resp.json["input"]["format"] == fmt
    done = _finished(client, user, resp.json["id"])
    assert done["status"] == "succeeded", done
    assert (done["rows_total"], done["rows_done"], done["rows_failed"]) == (N, N, 0)
    result = _result(client, user, resp.json["id"], out)
    assert list(result.columns) == ["id", "prediction", "proba_high", "proba_low", "error"]
    assert result["id"].tolist() == frame["id"].tolist()  # input order kept
    local = frame[["fee", "plan"]]
    assert result["prediction"].tolist() == model.predict(local).tolist()
    np.testing.assert_allclose(
        result[["proba_high", "proba_low"]].to_numpy(), model.predict_proba(local), atol=1e-6
    )
    assert result["error"].isna().all() or (result["error"] == "").all()


def test_bad_cells_fail_their_rows_only(client, user, model, tmp_path):
    meta = upload_ready(client, user, model, tmp_path, name="churn-bad-cells")
    frame = _frame(250).astype({"fee": object})
    frame.loc[3, "fee"] = "cheap"
    frame.loc[120, "plan"] = ""  # a missing category: the encoder ignores it (nullable)
    resp = _submit(client, user, meta["id"], frame.to_csv(index=False).encode(), "in.csv")
    done = _finished(client, user, resp.json["id"])
    assert done["status"] == "partial", done
    assert (done["rows_done"], done["rows_failed"]) == (250, 1)
    result = _result(client, user, resp.json["id"], "csv")
    assert result.loc[3, "error"] == "fee: expected a number"
    assert pd.isna(result.loc[3, "prediction"])
    good = frame.drop(index=3)
    local = pd.DataFrame(
        {"fee": pd.to_numeric(good["fee"]), "plan": good["plan"].replace("", np.nan)}
    )
    assert result.drop(index=3)["prediction"].tolist() == model.predict(local).tolist()


def test_refused_files_create_nothing(client, user, model, tmp_path):
    meta = upload_ready(client, user, model, tmp_path, name="churn-refused")
    before = _batch_count()
    missing = _submit(client, user, meta["id"], b"id,fee\nx,1\n", "in.csv")
    assert missing.status_code == 422
    assert missing.json["error"]["details"]["missing"] == ["plan"]
    unknown_keep = _submit(
        client, user, meta["id"], b"fee,plan\n1,pro\n", "in.csv", keep_columns="nope"
    )
    assert unknown_keep.status_code == 422
    clash = b"fee,plan,prediction\n1,pro,x\n"
    for keep in ("*", "prediction"):
        resp = _submit(client, user, meta["id"], clash, "in.csv", keep_columns=keep)
        assert resp.status_code == 422 and resp.json["error"]["details"]["clashing"] == [
            "prediction"
        ]
    not_text = _submit(client, user, meta["id"], b"\xff\xfe\x00binary", "in.csv")
    assert not_text.status_code == 422
    assert _batch_count() == before


def test_other_users_see_nothing(client, user, other_user, model, tmp_path):
    meta = upload_ready(client, user, model, tmp_path, name="churn-private")
    resp = _submit(client, user, meta["id"], _frame(20).to_csv(index=False).encode(), "in.csv")
    batch_id = resp.json["id"]
    _finished(client, user, batch_id)
    for path in (f"/api/v1/batches/{batch_id}", f"/api/v1/batches/{batch_id}/result"):
        assert client.get(path, headers=other_user.headers).status_code == 404
    assert (
        client.delete(f"/api/v1/batches/{batch_id}", headers=other_user.headers).status_code == 404
    )
    listed = client.get("/api/v1/batches", headers=other_user.headers).json
    assert batch_id not in [b["id"] for b in listed["items"]]
    mine = client.get(f"/api/v1/batches?model_id={meta['id']}", headers=user.headers).json
    assert [b["id"] for b in mine["items"]] == [batch_id]
    analytics = client.get(f"/api/v1/models/{meta['id']}/analytics", headers=user.headers).json
    assert analytics["rows_predicted"] == 20  # the batch's rows count with the jobs'
    assert analytics["total"] == 0  # jobs only: a batch is not a job


def _batch_count() -> int:
    from sqlalchemy import func, select

    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(Batch))
