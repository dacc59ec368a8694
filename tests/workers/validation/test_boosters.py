"""XGBoost and LightGBM in validation and serving, without a worker: the audit of wrappers from
pickles, native files described and served with the local model's answers, malformed trees
refused, wrappers compiled to ONNX only when equivalent, and the runtime each format gets."""

from __future__ import annotations

import json
from collections import defaultdict
from types import SimpleNamespace

import joblib
import numpy as np
import pytest
import xgboost

from shared.booster_trees import check_lightgbm_text
from shared.config import Settings
from shared.runtime_choice import choose_runtime
from shared.safe_load import ModelLoadError, UnsafeModelError, load_joblib
from tests.fixtures import boosters
from workers.runtimes.lightgbm import LightGBMRuntime
from workers.runtimes.selection import cache_entry
from workers.runtimes.xgboost import XGBoostRuntime
from workers.validation.audit import audit_model
from workers.validation.booster_upload import inspect_native, load_native
from workers.validation.compile import compile_model
from workers.validation.inspection import inspect_upload
from workers.validation.introspect import SmokePredictError, describe
from workers.validation.validate import compile_request

_FORMATS = {"json": "xgboost_json", "ubj": "xgboost_ubj", "txt": "lightgbm_txt"}


def _native(name: str, tmp_path) -> tuple[object, str, bytes]:
    model, path = boosters.write_native(name, tmp_path)
    return model, _FORMATS[path.suffix[1:]], path.read_bytes()


@pytest.mark.parametrize("name", sorted(boosters.WRAPPERS))
def test_wrappers_pass_the_audit_and_name_their_framework(name):
    model = boosters.fit(name)
    audit_model(model)
    meta = describe(model)
    assert meta["framework"] == ("xgboost" if "xgb" in name else "lightgbm")


def _with(model, **attributes):
    for key, value in attributes.items():
        setattr(model, key, value)
    return model


@pytest.mark.parametrize(
    ("name", "attributes", "message"),
    [
        ("xgb_binary", {"objective": np.log1p}, "objective holds a callable"),
        ("xgb_binary", {"eval_metric": np.sqrt}, "eval_metric holds a callable"),
        ("xgb_regressor", {"callbacks": [np.expm1]}, "callbacks holds a ufunc"),
        ("lgbm_binary", {"objective": np.log1p}, "objective holds a callable"),
        ("lgbm_binary", {"_objective": np.log1p}, "_objective holds a callable"),
        ("lgbm_regressor", {"_Booster": "a string"}, "holds no lightgbm booster"),
        ("xgb_binary", {"kwargs": {"obj": object()}}, "kwargs holds a object"),
        ("lgbm_binary", {"_best_score": defaultdict(np.log1p)}, "defaultdict with a factory"),
    ],
)
def test_wrapper_holding_a_callable_or_a_stranger_is_refused(name, attributes, message):
    model = _with(boosters.fit(name), **attributes)
    with pytest.raises((UnsafeModelError, ModelLoadError), match=message):
        audit_model(model)


def test_booster_without_a_loaded_handle_is_refused(tmp_path):
    """A crafted state whose handle is None loads (XGBoost skips it) and must not be served."""
    model = boosters.fit("xgb_binary")
    model.get_booster().handle = None  # what `BUILD {"handle": None}` leaves
    path = tmp_path / "unloaded.joblib"
    joblib.dump(model, path)
    with pytest.raises(ModelLoadError, match="was not loaded from a model"):
        audit_model(load_joblib(path))


@pytest.mark.parametrize("name", sorted(boosters.NATIVE))
def test_native_file_is_described_and_served_with_the_local_answers(tmp_path, name):
    model, fmt, data = _native(name, tmp_path)
    meta = inspect_native(fmt, data, boosters.held_out()[:3].tolist())
    classifier = hasattr(model, "predict_proba")
    assert meta["framework"] == ("xgboost" if fmt.startswith("xgboost") else "lightgbm")
    assert meta["input_schema"]["n_features"] == boosters.N_FEATURES
    assert meta["output_schema"]["task"] == ("classification" if classifier else "regression")
    runtime = load_native(fmt, data)
    rows = boosters.held_out()
    assert runtime.predict(rows) == model.predict(rows).tolist()
    if classifier:
        probabilities, classes = runtime.predict_proba(rows)
        assert classes == meta["output_schema"]["classes"] == model.classes_.tolist()
        np.testing.assert_array_equal(probabilities, model.predict_proba(rows))


def test_native_xgboost_keeps_feature_names(tmp_path):
    import pandas as pd

    x, y = boosters.binary()
    model = xgboost.XGBClassifier(n_estimators=3).fit(pd.DataFrame(x, columns=boosters.COLUMNS), y)
    path = boosters.save_native(model, tmp_path / "named.json")
    meta = inspect_native("xgboost_json", path.read_bytes(), None)
    assert meta["input_schema"]["feature_names"] == boosters.COLUMNS


def test_native_sample_of_the_wrong_width_is_refused(tmp_path):
    _, fmt, data = _native("xgb_binary.json", tmp_path)
    with pytest.raises(SmokePredictError, match="5 finite numbers"):
        inspect_native(fmt, data, [[1.0, 2.0]])


def _xgboost_json_with(tmp_path, change) -> bytes:
    _, _, data = _native("xgb_binary.json", tmp_path)
    document = json.loads(data)
    change(document["learner"]["gradient_booster"]["model"]["trees"][0])
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    "change",
    [
        lambda tree: tree["left_children"].__setitem__(0, 0),  # a split that is its own child
        lambda tree: tree["right_children"].__setitem__(0, 10_000),  # out of range
        lambda tree: tree["split_indices"].__setitem__(0, 99),  # a feature it does not have
    ],
)
def test_malformed_xgboost_tree_is_refused(tmp_path, change):
    with pytest.raises(ModelLoadError):
        inspect_native("xgboost_json", _xgboost_json_with(tmp_path, change), None)


def _lightgbm_text_with(tmp_path, key: str, value: str) -> str:
    _, _, data = _native("lgbm_binary.txt", tmp_path)
    lines = data.decode().splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(f"{key}="))
    numbers = lines[first].split("=", 1)[1].split()
    numbers[0] = value
    lines[first] = f"{key}={' '.join(numbers)}"
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("left_child", "0", "out of order"),  # the root is its own child: an endless loop
        ("right_child", "500", "out of order or out of range"),
        ("left_child", "-500", "leaf it does not have"),
        ("split_feature", "77", "feature the model does not have"),
    ],
)
def test_malformed_lightgbm_tree_is_refused(tmp_path, key, value, message):
    text = _lightgbm_text_with(tmp_path, key, value)
    with pytest.raises(ModelLoadError, match=message):
        check_lightgbm_text(text, boosters.N_FEATURES)
    with pytest.raises(ModelLoadError, match=message):  # before LightGBM's parser sees it
        inspect_native("lightgbm_txt", text.encode(), None)


@pytest.mark.parametrize("name", ["xgb_multiclass", "lgbm_string_labels"])
def test_wrappers_compile_to_an_equivalent_onnx_model(name):
    model = boosters.fit(name)
    compiled = compile_model(model, describe(model), None, Settings())
    assert compiled.data is not None, compiled.reason
    assert compiled.info["status"] == "compiled"


def test_a_float_graph_off_by_more_than_1e6_of_a_value_keeps_scikit_learn():
    """LightGBM's converter makes float graphs only: 0.0647 answered as 0.0647002 is 3.3e-6 of
    that value (2e-7 of the outputs' scale): too far for a client comparing values."""
    model = boosters.fit("pipeline_lgbm")
    compiled = compile_model(model, describe(model), None, Settings())
    assert compiled.data is None
    assert "of themselves (ONNX_REGRESSION_RTOL 1e-06)" in compiled.reason


def test_inspect_upload_routes_each_format(tmp_path):
    request = {"sample": None, "compile": compile_request(Settings())}
    _, fmt, data = _native("lgbm_regressor.txt", tmp_path)
    meta, blob = inspect_upload({**request, "format": fmt}, data)
    assert meta["framework"] == "lightgbm" and blob == b""
    _, path = boosters.dump_wrapper("xgb_binary", tmp_path)
    meta, blob = inspect_upload({**request, "format": "joblib"}, path.read_bytes())
    assert meta["framework"] == "xgboost" and meta["onnx"]["status"] == "compiled" and blob


def test_native_formats_get_their_library_runtime():
    assert choose_runtime("xgboost_ubj", "auto", None, None)[0] == "xgboost"
    assert choose_runtime("lightgbm_txt", "sklearn", None, None)[0] == "lightgbm"
    assert choose_runtime("joblib", "auto", None, None)[0] == "sklearn"


@pytest.mark.parametrize(
    ("fmt", "runtime"), [("xgboost_json", XGBoostRuntime), ("lightgbm_txt", LightGBMRuntime)]
)
def test_cache_entry_of_a_native_file(tmp_path, fmt, runtime):
    name = "xgb_regressor.json" if fmt == "xgboost_json" else "lgbm_regressor.txt"
    _, path = boosters.write_native(name, tmp_path)
    ref = SimpleNamespace(
        id="m",
        format=fmt,
        artifact_key=path.name,
        sha256="a" * 64,
        size_bytes=9,
        input_schema=None,
        runtime=runtime.name,
        onnx_key=None,
        onnx_sha256=None,
    )
    store = SimpleNamespace(local_path=lambda key, sha256=None: tmp_path / key)
    key, size, loader = cache_entry(ref, store, rows=10, onnx_max_rows=5)
    assert key == ("m", "a" * 64) and size == 9
    assert isinstance(loader(), runtime)
