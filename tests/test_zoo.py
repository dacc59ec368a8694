"""The recipe zoo end to end: every recipe of tests/fixtures/recipes.py (scikit-learn pipelines on
numbers, categories, text and flags; XGBoost and LightGBM wrappers and their own files) is
uploaded through the API, validated and predicted by a real worker, and its answers for held-out
rows (missing values in every column, unseen categories) compared with the local model's: labels
equal, numbers within 1e-6 relative, probabilities within 1e-6. Rows the model itself refuses
must be refused by the service with a 422 naming the row and a column to blame.

All models are uploaded first (answered 202 at once) so that the worker validates them while the
next ones upload; then each is checked in a subtest of its own.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pytest
from flask import Flask

from shared.config import Settings
from tests.fixtures import recipes
from tests.fixtures.models import upload
from web import create_app

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker")]

RTOL = 1e-6  # regression outputs, relative
PROBA_ATOL = 1e-6  # probabilities, absolute (what the service's ONNX check allows)
VALIDATION_DEADLINE_S = 240
HELD_OUT = recipes.held_out()


@pytest.fixture(scope="module")
def no_wait_app() -> Flask:
    """The app on the run's queue, answering uploads at once (202 validating)."""
    application = create_app(Settings(VALIDATION_WAIT_S=0))
    application.testing = True
    return application


def _upload_all(client, account, tmp_path) -> dict[str, dict]:
    models = {}
    for name, recipe in recipes.RECIPES.items():
        fields = {"sample": sample} if (sample := recipes.sample(recipe)) else {}
        resp = upload(client, account, recipes.save(name, tmp_path), name=name, **fields)
        assert resp.status_code in (201, 202), (name, resp.json)
        models[name] = resp.json
    return models


def _wait_validated(client, account, models: dict[str, dict]) -> dict[str, dict]:
    deadline = time.monotonic() + VALIDATION_DEADLINE_S
    pending = {name for name, meta in models.items() if meta["status"] == "validating"}
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            meta = client.get(f"/api/v1/models/{models[name]['id']}", headers=account.headers).json
            if meta["status"] != "validating":
                models[name] = meta
                pending.discard(name)
        time.sleep(0.5)
    return models


def _predict(client, account, meta: dict, rows: list[Any], proba: bool):
    return client.post(
        f"/api/v1/models/{meta['id']}/predict?timeout=30",
        json={"inputs": rows, "return_probabilities": proba},
        headers=account.headers,
    )


def _column_names(recipe: recipes.Recipe) -> list[str]:
    if recipe.frame:
        return list(recipe.columns)
    return [f"x{i}" for i in range(len(recipe.columns))]


def _expected_dtype(name: str, recipe: recipes.Recipe, column: str) -> set[str]:
    if column in (*recipes.CATEGORIES, recipes.TEXT):
        return {"string"}
    if column == recipes.FLAG:
        return {"boolean"} if recipes.sample(recipe) else {"number"}
    if column == recipes.COUNT:
        # An encoder saw its ints; otherwise the sample's ints may tell.
        return {"integer"} if name == "integer_one_hot" else {"number", "integer"}
    return {"number"}


def _check_schema(name: str, meta: dict, answer: recipes.Answer) -> None:
    recipe = recipes.RECIPES[name]
    schema = meta["input_schema"]
    assert schema["n_features"] == len(recipe.columns)
    assert schema["feature_names"] == (list(recipe.columns) if recipe.frame else None)
    columns = schema["columns"]
    assert [c["name"] for c in columns] == _column_names(recipe), columns
    for source, column in zip(recipe.columns, columns, strict=True):
        assert column["dtype"] in _expected_dtype(name, recipe, source), column
        # Held-out row i < len(COLUMNS) misses only column COLUMNS[i]: the model answers it
        # exactly when the column is nullable.
        alone = recipes.COLUMNS.index(source)
        assert column["nullable"] is (alone not in answer.refused), (column, answer.refused)
        if "categories" in column and source == "city":
            assert set(recipes.CITIES) <= set(column["categories"]), column


def _check_output_schema(name: str, meta: dict, answer: recipes.Answer) -> None:
    recipe, model = recipes.RECIPES[name], recipes.fitted(name)
    out = meta["output_schema"]
    assert out["task"] == recipe.kind
    assert out["has_proba"] is (answer.probabilities is not None)
    if recipe.kind == "classification":
        assert out["classes"] == model.classes_.tolist()


def _check_refusals(client, account, name: str, meta: dict, answer: recipes.Answer) -> None:
    """All rows at once: 422 naming a refused row and its culprit; each refused row alone too."""
    recipe = recipes.RECIPES[name]
    names = _column_names(recipe)
    named = recipe.frame
    proba = answer.probabilities is not None

    def culprits(index: int) -> set[Any]:
        blamed = answer.refused[index]
        # Columns of a matrix model are x0, x1, ... (an index is accepted too).
        return {names[recipe.columns.index(c)] for c in blamed} | (
            set() if named else {recipe.columns.index(c) for c in blamed}
        )

    resp = _predict(client, account, meta, recipes.request_rows(recipe, HELD_OUT, named), proba)
    assert resp.status_code == 422, resp.json
    error = resp.json["error"]
    assert error["code"] == "invalid_input", error
    assert error["details"]["row"] in answer.refused, (error, answer.refused)
    assert error["details"].get("column") in culprits(error["details"]["row"]), error
    for index in answer.refused:
        rows = recipes.request_rows(recipe, [HELD_OUT[index]], named)
        alone = _predict(client, account, meta, rows, proba)
        assert alone.status_code == 422, (index, alone.json)
        details = alone.json["error"]["details"]
        assert details["row"] == 0 and details.get("column") in culprits(index), (index, details)


def _accepted_rows(name: str, answer: recipes.Answer) -> list[Any]:
    recipe = recipes.RECIPES[name]
    return recipes.request_rows(recipe, [HELD_OUT[i] for i in answer.accepted], recipe.frame)


def _submit(client, account, meta: dict, rows: list[Any], proba: bool):
    """A queued job: all of them are queued before any is awaited, so that both worker
    children load and answer models at the same time."""
    return client.post(
        f"/api/v1/models/{meta['id']}/jobs",
        json={"inputs": rows, "return_probabilities": proba},
        headers=account.headers,
    )


def _check_answers(client, account, name: str, meta: dict, answer: recipes.Answer, queued) -> None:
    recipe, model = recipes.RECIPES[name], recipes.fitted(name)
    assert queued.status_code == 202, queued.json
    job = client.get(f"/api/v1/jobs/{queued.json['id']}?wait=30", headers=account.headers).json
    assert job["status"] == "succeeded", job
    if job["runtime"] != meta["runtime"]:
        # A compiled model answers rows with nulls through scikit-learn when ONNX would not
        # answer them alike; nothing else may change the runtime.
        rows = _accepted_rows(name, answer)
        assert job["runtime"] == "sklearn" and _has_null(rows), (job["runtime"], meta["runtime"])
    result = job["result"]
    if recipe.kind == "regression":
        np.testing.assert_allclose(result["predictions"], answer.predictions, rtol=RTOL)
    else:
        assert result["predictions"] == answer.predictions.tolist()
    if answer.probabilities is not None:
        assert result["classes"] == model.classes_.tolist()
        np.testing.assert_allclose(
            result["probabilities"], answer.probabilities, rtol=0, atol=PROBA_ATOL
        )


@pytest.mark.timeout(600)
def test_every_recipe_is_served_with_the_local_answers(no_wait_app, user, tmp_path, subtests):
    client = no_wait_app.test_client()
    started = time.monotonic()
    uploaded = _upload_all(client, user, tmp_path)
    # The local answers while the worker validates (it runs in processes of its own).
    answers = {name: recipes.local_answer(name, HELD_OUT) for name in uploaded}
    models = _wait_validated(client, user, uploaded)
    validated = time.monotonic()
    queued = {
        name: _submit(
            client,
            user,
            meta,
            _accepted_rows(name, answers[name]),
            answers[name].probabilities is not None,
        )
        for name, meta in models.items()
        if meta["status"] == "ready"
    }
    served: dict[str, tuple[str, str]] = {}
    for name, meta in models.items():
        with subtests.test(recipe=name):
            assert meta["status"] == "ready", (meta["status"], meta.get("error"))
            served[name] = (meta["runtime"], meta.get("runtime_reason") or "")
            answer = answers[name]
            _check_output_schema(name, meta, answer)
            _check_schema(name, meta, answer)
            if answer.refused:
                _check_refusals(client, user, name, meta, answer)
            _check_answers(client, user, name, meta, answer, queued[name])
    print(_report(served, validated - started, time.monotonic() - validated))
    _check_runtimes(served)


def _check_runtimes(served: dict[str, tuple[str, str]]) -> None:
    """ONNX Runtime serves some recipes; scikit-learn others because conversion failed or
    differed (the model says why); the booster files their own library."""
    runtimes = pd.Series({name: runtime for name, (runtime, _) in served.items()})
    assert (runtimes == "onnx").sum() >= 3, runtimes.value_counts()
    kept = [name for name, (runtime, _) in served.items() if runtime == "sklearn"]
    for name in kept:
        assert served[name][1], f"{name}: scikit-learn serves it with no reason given"
    differed = [name for name in kept if "no equivalent ONNX model" in served[name][1]]
    assert len(differed) >= 3, runtimes.value_counts()
    for name, recipe in recipes.RECIPES.items():
        if recipe.native and name in served:
            expected = "xgboost" if name.startswith("xgb") else "lightgbm"
            assert served[name][0] == expected, (name, served[name])


def _report(served: dict[str, tuple[str, str]], validation_s: float, checks_s: float) -> str:
    lines = [f"zoo: {len(served)} ready; validation {validation_s:.1f} s, checks {checks_s:.1f} s"]
    lines += [f"  {name:38} {rt:9} {reason[:150]}" for name, (rt, reason) in served.items()]
    return "\n".join(lines)


def _has_null(rows: list[Any]) -> bool:
    return any(v is None for row in rows for v in (row.values() if isinstance(row, dict) else row))
