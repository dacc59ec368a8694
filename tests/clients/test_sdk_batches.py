"""Batches through the SDK against the real server, worker and batch worker: a CSV or Parquet
file streamed up, predicted in chunks, the result downloaded equal to the local model's."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlsp import Batch, BatchFailed, BatchTimeout, Client, Conflict, ValidationError
from mlsp.multipart import Joined, form_body
from tests.clients.typed import FRAME, NAMES, local_frame

N = 250  # three chunks of the batch worker's 100 rows


@pytest.fixture
def sdk(live_url, api_key):
    with Client(live_url, api_key=api_key) as client:
        yield client


def typed_rows(n: int = N, seed: int = 3) -> pd.DataFrame:
    """`n` rows drawn from the typed pipeline's training frame (missing values included), with
    an id column the model does not take."""
    rng = np.random.default_rng(seed)
    frame = FRAME.iloc[rng.integers(0, len(FRAME), n)].reset_index(drop=True)
    return frame.assign(id=[f"r{i:04d}" for i in range(n)])[["id", *NAMES]]


def expected(pipeline, frame: pd.DataFrame) -> tuple[list, np.ndarray]:
    rows = frame[NAMES].astype(object).where(frame[NAMES].notna(), None).to_numpy().tolist()
    local = local_frame(rows)
    return pipeline.predict(local).tolist(), pipeline.predict_proba(local)


def write(frame: pd.DataFrame, path) -> None:
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)  # NaN and None as empty cells
    else:
        pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), path)


def read(path) -> pd.DataFrame:
    if path.suffix == ".csv":
        return pd.read_csv(path, keep_default_na=False, na_values=[""])
    return pq.read_table(path).to_pandas()


@pytest.mark.e2e
@pytest.mark.usefixtures("batch_worker")
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_batch_round_trip_equals_local_predict(sdk, typed, pipeline, tmp_path, fmt):
    frame = typed_rows()
    src = tmp_path / f"in.{fmt}"
    write(frame, src)
    batch = sdk.batch_predict(typed["id"], src, keep_columns=["id"], return_probabilities=True)
    assert isinstance(batch, Batch) and batch.status == "queued"
    assert batch.output_format == fmt and batch.raw["input"]["filename"] == src.name
    seen: list[tuple[str, int]] = []
    batch.wait(timeout=90, poll=0.1, on_progress=lambda b: seen.append((b.status, b.rows_done)))
    assert batch.raise_for_status().status == "succeeded", batch.raw
    assert (batch.rows_total, batch.rows_done, batch.rows_failed) == (N, N, 0)
    assert seen[-1] == ("succeeded", N)
    done = [rows for _, rows in seen]
    assert done == sorted(done)  # progress only goes forward
    got = read(batch.download(tmp_path / f"out.{fmt}"))
    assert not (tmp_path / f"out.{fmt}.part").exists()
    assert list(got.columns) == ["id", "prediction", "proba_no", "proba_yes", "error"]
    labels, proba = expected(pipeline, frame)
    assert got["id"].tolist() == frame["id"].tolist()
    assert got["prediction"].tolist() == labels
    np.testing.assert_allclose(got[["proba_no", "proba_yes"]].to_numpy(), proba, atol=1e-6)
    assert got["error"].replace("", None).isna().all()
    assert sdk.batches(model=typed["id"]) == [batch] and sdk.batch(batch.id) == batch
    assert sdk.batches(status="failed") == []


@pytest.mark.e2e
@pytest.mark.usefixtures("batch_worker")
def test_batch_from_a_stream_with_bad_cells_is_partial(sdk, typed, pipeline, tmp_path):
    frame = typed_rows(120)
    frame["rooms"] = frame["rooms"].astype(object)
    frame.loc[7, "rooms"] = "many"
    stream = io.BytesIO(b"ignored prefix" + frame.to_csv(index=False).encode())
    stream.seek(len(b"ignored prefix"))  # sent from the stream's position
    batch = sdk.batch_predict(typed["id"], stream, filename="rooms.csv", output_format="parquet")
    batch.wait(timeout=60, poll=0.1).raise_for_status()  # partial has a result: not raised
    assert (batch.status, batch.rows_done, batch.rows_failed) == ("partial", 120, 1)
    got = read(batch.download(tmp_path / "out.parquet"))
    assert list(got.columns) == ["prediction", "error"]
    assert got.loc[7, "error"] == "rooms: expected a number" and pd.isna(got.loc[7, "prediction"])
    good = frame.drop(index=7)
    good["rooms"] = good["rooms"].astype(int)
    assert got.drop(index=7)["prediction"].tolist() == expected(pipeline, good)[0]


@pytest.mark.e2e
@pytest.mark.usefixtures("batch_worker")
def test_batch_errors_are_the_sdk_errors(sdk, typed, tmp_path):
    src = tmp_path / "in.csv"
    typed_rows(5).drop(columns=["plan"]).to_csv(src, index=False)
    with pytest.raises(ValidationError) as refused:
        sdk.batch_predict(typed["id"], src)
    assert refused.value.status == 422 and refused.value.details["missing"] == ["plan"]
    write(typed_rows(5), src)
    with pytest.raises(ValidationError) as kept:
        sdk.batch_predict(typed["id"], src, keep_columns="nope")
    assert kept.value.details == {"field": "keep_columns", "unexpected": ["nope"]}
    # 2,000 rows are twenty chunks: asked at once, the batch has not finished.
    write(typed_rows(2000), src)
    batch = sdk.batch_predict(typed["id"], src)
    with pytest.raises(BatchTimeout) as late:
        batch.wait(timeout=0)
    assert late.value.batch is batch and batch.status == "queued"
    with pytest.raises(Conflict) as early:
        batch.download(tmp_path / "out.csv")
    assert early.value.code == "batch_not_finished" and not (tmp_path / "out.csv.part").exists()
    assert batch.cancel().status == "cancelled" and batch.done
    with pytest.raises(BatchFailed) as failed:
        batch.raise_for_status()
    assert failed.value.code == "batch_cancelled"
    with pytest.raises(Conflict) as again:
        sdk.cancel_batch(batch.id)
    assert again.value.code == "batch_finished"


@pytest.mark.no_db
def test_joined_reads_its_parts_as_one_stream():
    file = io.BytesIO(b"xxhello world")
    joined = Joined([b"<", (file, 2, 5), b"", b">"])
    assert len(joined) == 7 and joined.read(3) == b"<he" and len(joined) == 4
    assert joined.read() == b"llo>" and joined.read(5) == b""
    joined.seek(0)
    assert b"".join(iter(lambda: joined.read(2), b"")) == b"<hello>"
    assert joined.seek(-2, io.SEEK_END) == 5 and joined.read() == b"o>"


@pytest.mark.no_db
def test_form_body_is_multipart_that_werkzeug_parses():
    from werkzeug.formparser import parse_form_data

    stream = io.BytesIO(b"a,b\n1,2\n")
    body, content_type = form_body({"keep_columns": "a"}, "file", 'in "1".csv', stream)
    raw = body.read()
    environ = {
        "REQUEST_METHOD": "POST",
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": str(len(raw)),
        "wsgi.input": io.BytesIO(raw),
    }
    _, form, files = parse_form_data(environ)
    assert form["keep_columns"] == "a"
    assert files["file"].filename == 'in "1".csv' and files["file"].read() == b"a,b\n1,2\n"
