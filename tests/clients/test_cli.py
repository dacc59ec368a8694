"""The `mlsp` command line (click's CliRunner) against the real server over HTTP."""

from __future__ import annotations

import csv
import json
import os
import stat
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsp.cli.config import config_path
from tests.clients.typed import ROWS as TYPED_ROWS
from tests.clients.typed import local_frame
from tests.fixtures.models import FEATURES, dump, fit_classifier, fit_frame_pipeline, iris

ROWS = iris()[0][::30]


def _json(result) -> object:
    return json.loads(result.stdout)


@pytest.mark.e2e
def test_login_stores_a_private_key_and_commands_work(logged_in, tmp_path):
    config = json.loads(logged_in.config.read_text())
    assert config["api_key"].startswith("mlp_") and config["email"] == logged_in.email
    assert stat.S_IMODE(os.stat(logged_in.config).st_mode) == 0o600
    local = fit_classifier()
    path = dump(local, tmp_path / "iris.joblib")
    model = _json(logged_in("models", "upload", str(path), "--name", "iris", "--json"))
    assert model["status"] == "ready"
    assert "iris" in logged_in("models", "list").stdout  # a human table
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(ROWS.tolist()))
    job = _json(logged_in("--json", "predict", "iris", "--input", str(rows), "--proba"))
    assert job["result"]["predictions"] == local.predict(ROWS).tolist()
    body = json.dumps({"inputs": ROWS.tolist()})
    job = _json(logged_in("submit", "iris:1", "-i", "-", "--wait", "--json", stdin=body))
    assert job["status"] == "succeeded"
    assert len(_json(logged_in("jobs", "list", "--model", "iris", "--json"))) == 2
    shown = logged_in("jobs", "show", job["id"])
    assert job["id"] in shown.stdout and "succeeded" in shown.stdout
    assert _json(logged_in("models", "disable", model["id"], "--json"))["status"] == "disabled"
    failed = logged_in("predict", "iris", "-i", str(rows), ok=False)
    assert failed.exit_code == 1 and "model_not_ready" in failed.output
    logged_in("models", "enable", "iris")
    logged_in("models", "delete", "iris", "--yes")
    missing = logged_in("models", "show", "iris", ok=False)
    assert missing.exit_code == 1 and "not_found" in missing.output


@pytest.mark.e2e
def test_key_management_logs_in_with_the_password(logged_in):
    made = _json(logged_in("keys", "create", "ci", "--password", logged_in.password, "--json"))
    listed = _json(logged_in("keys", "list", "--password", logged_in.password, "--json"))
    assert made["id"] in [k["id"] for k in listed] and len(listed) == 2
    logged_in("keys", "revoke", made["id"], "--password", logged_in.password)
    assert _json(logged_in("whoami", "--json"))["email"] == logged_in.email
    logged_in("logout", "--revoke", "--password", logged_in.password)
    assert "api_key" not in json.loads(logged_in.config.read_text())
    assert "Not logged in" in logged_in("whoami", ok=False).output


def _write_csv(path: Path, header: list[str] | None, rows) -> None:
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        if header:
            out.writerow(header)
        out.writerows(rows)


@pytest.mark.e2e
def test_predict_file_10k_rows_in_order(logged_in, tmp_path):
    """10,000 rows by feature name (columns shuffled, extra id column) in 10 jobs."""
    pipe = fit_frame_pipeline()
    logged_in("models", "upload", str(dump(pipe, tmp_path / "p.joblib")), "--name", "pipe")
    rng = np.random.default_rng(7)
    x = iris()[0][rng.integers(0, 150, 10_000)] + rng.normal(0, 0.3, (10_000, 4)).round(3)
    header = ["id", *reversed(FEATURES)]
    _write_csv(tmp_path / "in.csv", header, [[i, *row[::-1]] for i, row in enumerate(x)])
    out = tmp_path / "out.csv"
    args = ["predict-file", "pipe", str(tmp_path / "in.csv"), "-o", str(out), "--proba"]
    summary = _json(logged_in(*args, "--chunk-rows", "1000", "--json"))
    assert (summary["rows"], summary["jobs"]) == (10_000, 10)
    got = pd.read_csv(out)
    assert list(got.columns) == [*header, "prediction", "proba_0", "proba_1", "proba_2"]
    assert got["id"].tolist() == list(range(10_000))
    frame = pd.DataFrame(x, columns=FEATURES)
    assert got["prediction"].tolist() == pipe.predict(frame).tolist()
    np.testing.assert_allclose(got[["proba_0", "proba_1", "proba_2"]], pipe.predict_proba(frame))


@pytest.mark.e2e
def test_predict_file_plain_columns_without_header(logged_in, tmp_path):
    local = fit_classifier()
    logged_in("models", "upload", str(dump(local, tmp_path / "m.joblib")), "--name", "plain")
    x = np.tile(ROWS, (501, 1))  # 2,505 rows: uneven last chunk
    _write_csv(tmp_path / "in.csv", None, x.tolist())
    out = tmp_path / "out.csv"
    logged_in(
        "predict-file",
        "plain",
        str(tmp_path / "in.csv"),
        "-o",
        str(out),
        "--chunk-rows",
        "1000",
        "--concurrency",
        "2",
    )
    got = np.loadtxt(out, delimiter=",")
    np.testing.assert_array_equal(got[:, :4], x)
    assert got[:, 4].astype(int).tolist() == local.predict(x).tolist()
    _write_csv(tmp_path / "bad.csv", None, [[1, 2, 3, 4], [1, 2, 3, "x"]])
    bad = logged_in("predict-file", "plain", str(tmp_path / "bad.csv"), "-o", str(out), ok=False)
    assert bad.exit_code == 2 and "line 2, column 4: 'x' is not a number" in bad.output
    assert not out.with_name("out.csv.part").exists()


@pytest.mark.no_db
def test_config_path_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("MLSP_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config_path() == tmp_path / "xdg" / "mlsp" / "config.json"
    monkeypatch.setenv("MLSP_CONFIG", str(tmp_path / "elsewhere.json"))
    assert config_path() == tmp_path / "elsewhere.json"


@pytest.mark.e2e
def test_predict_file_carries_id_and_kept_columns(logged_in, tmp_path):
    local = fit_classifier()
    logged_in("models", "upload", str(dump(local, tmp_path / "m.joblib")), "--name", "plain")
    header = ["id", "a", "b", "c", "d", "note"]
    _write_csv(tmp_path / "in.csv", header, [[f"r{i}", *row, "x"] for i, row in enumerate(ROWS)])
    out = tmp_path / "out.csv"
    refused = logged_in("predict-file", "plain", str(tmp_path / "in.csv"), "-o", str(out), ok=False)
    assert refused.exit_code == 2 and "--id-column" in refused.output
    logged_in(
        "predict-file",
        "plain",
        str(tmp_path / "in.csv"),
        "-o",
        str(out),
        "--id-column",
        "id",
        "--keep-columns",
        "note",
    )
    got = pd.read_csv(out)
    assert list(got.columns) == [*header, "prediction"]
    assert got["id"].tolist() == [f"r{i}" for i in range(len(ROWS))]
    assert got["prediction"].tolist() == local.predict(ROWS).tolist()
    absent = logged_in(
        "predict-file",
        "plain",
        str(tmp_path / "in.csv"),
        "-o",
        str(out),
        "--id-column",
        "key",
        ok=False,
    )
    assert absent.exit_code == 2 and "lacks the kept columns ['key']" in absent.output


@pytest.mark.e2e
def test_predict_file_reads_typed_columns_and_empty_cells(logged_in, pipeline, tmp_path):
    """Strings, True/False (as pandas writes them) and empty cells for missing values, read as
    the model's columns; a missing value the model refuses is named by its line and column."""
    model = dump(pipeline, tmp_path / "stays.joblib")
    logged_in("models", "upload", str(model), "--name", "stays")
    frame = local_frame(TYPED_ROWS)
    src, out = tmp_path / "in.csv", tmp_path / "out.csv"
    frame.rename_axis("id").to_csv(src)  # NaN and None as empty cells
    assert ",,False,1,basic" in src.read_text()  # age and city empty on the second row
    args = ["predict-file", "stays", str(src), "-o", str(out), "--id-column", "id"]
    logged_in(*args, "--chunk-rows", "2")
    got = pd.read_csv(out)
    assert got["id"].tolist() == list(range(len(TYPED_ROWS)))
    assert got["prediction"].tolist() == pipeline.predict(frame).tolist()
    frame.loc[3, "plan"] = None  # not nullable: the server refuses it (second job, file line 5)
    frame.rename_axis("id").to_csv(src)
    refused = logged_in(*args, "--chunk-rows", "2", ok=False)
    assert refused.exit_code == 1
    assert "line 5, column 'plan': missing value (null)" in refused.output
    frame.loc[3, "plan"] = "pro"
    frame["member"] = frame["member"].astype(object)
    frame.loc[1, "member"] = "maybe"
    frame.rename_axis("id").to_csv(src)
    refused = logged_in(*args, ok=False)
    assert refused.exit_code == 2 and "line 3, column 4: 'maybe' is not true or false" in (
        refused.output
    )
    assert not out.with_name("out.csv.part").exists()


@pytest.mark.e2e
def test_jobs_list_names_models_and_analytics_is_a_table(logged_in, tmp_path):
    logged_in(
        "models", "upload", str(dump(fit_classifier(), tmp_path / "m.joblib")), "--name", "irises"
    )
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps(ROWS.tolist()))
    logged_in("predict", "irises", "-i", str(rows))
    listed = logged_in("jobs", "list").stdout
    assert "irises:1" in listed
    report = logged_in("models", "analytics", "irises").stdout
    assert "p50" in report and "success rate" in report and "100.0%" in report
    assert "{" not in report  # no raw JSON in a cell
