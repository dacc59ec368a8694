"""`mlsp batch ...` and `mlsp predict-file` through a server batch, against the real server,
worker and batch worker."""

from __future__ import annotations

import csv
import json

import numpy as np
import pandas as pd
import pytest

from tests.clients.test_cli import ROWS, _write_csv
from tests.clients.test_sdk_batches import expected, typed_rows
from tests.fixtures.models import dump, fit_classifier

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("batch_worker")]


@pytest.fixture
def stays(logged_in, pipeline, tmp_path):
    """The typed pipeline uploaded as "stays" through the CLI."""
    logged_in("models", "upload", str(dump(pipeline, tmp_path / "stays.joblib")), "--name", "stays")
    return logged_in


def test_batch_submit_wait_download_status_list(stays, pipeline, tmp_path):
    frame = typed_rows()
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.to_csv(src, index=False)
    args = ["batch", "submit", "stays", str(src), "--keep-columns", "id", "--proba"]
    done = stays(*args, "--download", str(out))
    assert f"succeeded: {len(frame)}/{len(frame)} rows, 0 failed" in done.stdout
    assert f"Wrote {len(frame)} rows to {out}" in done.stderr
    got = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(got.columns) == ["id", "prediction", "proba_no", "proba_yes", "error"]
    labels, proba = expected(pipeline, frame)
    assert got["id"].tolist() == frame["id"].tolist() and got["prediction"].tolist() == labels
    np.testing.assert_allclose(got[["proba_no", "proba_yes"]], proba, atol=1e-6)
    listed = json.loads(stays("batch", "list", "--model", "stays", "--json").stdout)
    assert [b["status"] for b in listed] == ["succeeded"]
    batch_id = listed[0]["id"]
    assert "stays:1" in stays("batch", "list").stdout
    shown = stays("batch", "status", batch_id).stdout
    assert batch_id in shown and "succeeded" in shown
    waited = json.loads(stays("batch", "status", batch_id, "--wait", "--json").stdout)
    assert (waited["rows_done"], waited["rows_failed"]) == (len(frame), 0)
    again = tmp_path / "again.csv"
    stays("batch", "download", batch_id, str(again))
    assert again.read_bytes() == out.read_bytes()
    finished = stays("batch", "cancel", batch_id, ok=False)
    assert finished.exit_code == 1 and "batch_finished" in finished.output


def test_batch_status_follows_a_running_batch(stays, tmp_path):
    src = tmp_path / "in.parquet"
    typed_rows(1500).to_parquet(src, index=False)
    queued = json.loads(stays("batch", "submit", "stays", str(src), "--json").stdout)
    assert queued["status"] == "queued" and queued["input"]["format"] == "parquet"
    followed = stays("batch", "status", queued["id"], "--wait")
    assert "succeeded" in followed.stdout and "1500/1500" in followed.stderr  # the bar's count
    missing = stays("batch", "status", "00000000-0000-0000-0000-000000000000", ok=False)
    assert missing.exit_code == 1 and "not_found" in missing.output


def _cells(path) -> list[list[str]]:
    with open(path, newline="") as fh:
        return list(csv.reader(fh))


def test_predict_file_above_the_threshold_is_one_batch_with_the_jobs_output(logged_in, tmp_path):
    """A file without a header for a model without feature names: the batch path sends a header
    of its own and writes the same bytes as the job path (probabilities included)."""
    local = fit_classifier()
    logged_in("models", "upload", str(dump(local, tmp_path / "m.joblib")), "--name", "plain")
    rng = np.random.default_rng(5)
    x = ROWS[rng.integers(0, len(ROWS), 450)] + rng.normal(0, 1e-3, (450, 4)).round(6)
    x[0, 0] = 1e-05  # written 1e-05 by Python, 0.00001 by the server's CSV
    _write_csv(tmp_path / "in.csv", None, x.tolist())
    src, via_jobs, via_batch = tmp_path / "in.csv", tmp_path / "jobs.csv", tmp_path / "batch.csv"
    base = ["predict-file", "plain", str(src), "--proba", "--json"]
    jobs = json.loads(logged_in(*base, "-o", str(via_jobs), "--via", "jobs").stdout)
    batch = json.loads(logged_in(*base, "-o", str(via_batch), "--batch-above", "100").stdout)
    assert (jobs["rows"], batch["rows"], batch["jobs"]) == (450, 450, 0) and batch["batch"]
    by_batch, by_jobs = (_cells(p) for p in (via_batch, via_jobs))
    # Inputs and labels as the job path writes them; probabilities as Python writes floats, equal
    # to the last bit or two (a server chunk may be computed by another runtime than a job).
    assert [r[:5] for r in by_batch] == [r[:5] for r in by_jobs]
    assert all(cell == repr(float(cell)) for row in by_batch for cell in row[5:])
    np.testing.assert_allclose(
        np.array([r[5:] for r in by_batch], float), np.array([r[5:] for r in by_jobs], float), 1e-12
    )
    got = np.loadtxt(via_batch, delimiter=",")
    assert got[:, 4].astype(int).tolist() == local.predict(x).tolist()
    assert not list(tmp_path.glob("batch.csv.*"))  # no .part or downloaded result left


def test_predict_file_via_batch_keeps_columns_and_names_failed_rows(stays, tmp_path):
    frame = typed_rows(300).rename(columns={"id": "key"})
    src, via_jobs, via_batch = tmp_path / "in.csv", tmp_path / "jobs.csv", tmp_path / "batch.csv"
    frame[["plan", "key", *frame.columns[1:-1]]].to_csv(src, index=False)  # columns reordered
    base = ["predict-file", "stays", str(src), "--id-column", "key"]
    stays(*base, "-o", str(via_jobs), "--via", "jobs")
    summary = stays(*base, "-o", str(via_batch), "--via", "batch").stdout
    assert "Wrote 300 predictions" in summary and "(batch " in summary
    assert via_batch.read_bytes() == via_jobs.read_bytes()
    frame.loc[3, "plan"] = None  # not nullable: the server fails that row (file line 5)
    frame[["plan", "key", *frame.columns[1:-1]]].to_csv(src, index=False)
    refused = stays(*base, "-o", str(via_batch), "--via", "batch", ok=False)
    assert refused.exit_code == 1 and "line 5, column 'plan': missing value" in refused.output
    assert not list(tmp_path.glob("batch.csv.*"))
