"""XGBoost and LightGBM through shared.safe_load: their wrappers' pickles load through the
allow-list with identical predictions, their own files load with no pickle, crafted booster states
and other libraries' models are refused with what to do."""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import lightgbm
import numpy as np
import pytest
import xgboost
from joblib.numpy_pickle import NumpyUnpickler
from joblib.numpy_pickle_utils import _validate_fileobject_and_memmap

from shared import booster_files
from shared.allowlist_boosters import BOOSTER_GLOBALS, advice
from shared.safe_load import (
    ALLOWED_GLOBALS,
    ModelLoadError,
    UnsafeModelError,
    detect_format,
    load_joblib,
    load_model,
)
from tests.fixtures import boosters


@pytest.fixture(scope="module")
def wrapper_files(tmp_path_factory) -> dict[str, tuple[object, Path]]:
    root = tmp_path_factory.mktemp("boosters")
    return {name: boosters.dump_wrapper(name, root) for name in boosters.WRAPPERS}


def _recorded_globals(path: Path) -> set[tuple[str, str]]:
    recorded: set[tuple[str, str]] = set()

    class Recorder(NumpyUnpickler):  # unrestricted: only ever fed the models fitted here
        def find_class(self, module, name):
            recorded.add((module, name))
            return super().find_class(module, name)

    with path.open("rb") as f, _validate_fileobject_and_memmap(f, str(path)) as (fobj, _):
        Recorder(str(path), fobj, True).load()
    return recorded


def test_booster_table_is_what_the_wrappers_need(wrapper_files):
    recorded = set().union(*(_recorded_globals(path) for _, path in wrapper_files.values()))
    assert recorded <= ALLOWED_GLOBALS, sorted(recorded - ALLOWED_GLOBALS)
    assert recorded >= BOOSTER_GLOBALS, sorted(BOOSTER_GLOBALS - recorded)
    assert BOOSTER_GLOBALS <= ALLOWED_GLOBALS


@pytest.mark.parametrize("name", sorted(boosters.WRAPPERS))
def test_wrapper_pickle_loads_with_identical_predictions(wrapper_files, name):
    model, path = wrapper_files[name]
    assert detect_format(path.read_bytes()[:16], path.name) == "joblib"
    loaded = load_model(path, "joblib")
    assert type(loaded) is type(model)
    x = boosters.local_input(model, boosters.held_out())
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    if hasattr(model, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(x), model.predict_proba(x))


@pytest.mark.parametrize("name", sorted(boosters.NATIVE))
def test_native_file_is_detected_and_loads_without_pickle(tmp_path, name):
    model, path = boosters.write_native(name, tmp_path)
    fmt = detect_format(path.read_bytes()[:16], path.name)
    assert (
        fmt
        == {"json": "xgboost_json", "ubj": "xgboost_ubj", "txt": "lightgbm_txt"}[path.suffix[1:]]
    )
    booster = load_model(path.read_bytes(), fmt)
    expected = model.get_booster() if isinstance(model, xgboost.XGBModel) else model.booster_
    assert type(booster) is type(expected)
    assert booster.num_features() if fmt != "lightgbm_txt" else booster.num_feature()


@pytest.mark.parametrize(
    ("head", "filename", "expected"),
    [
        (b'{"learner":{"at', "model.json", "xgboost_json"),
        (b'  {"learner"', "MODEL.JSON", "xgboost_json"),
        (b'{"learner":{"at', "model.txt", None),  # JSON elsewhere: not guessed
        (b"{L\x00\x00\x00\x00\x00\x00\x00\x07le", "model.ubj", "xgboost_ubj"),
        (b"tree\nversion=v4\n", "model.txt", "lightgbm_txt"),
        (b"tree\nversion=v4\n", None, "lightgbm_txt"),
        (b"treehouse", "model.txt", None),
        (b"CBM1\x00\x00", "model.bin", "catboost"),
        (b"anything", "model.cbm", "catboost"),
    ],
)
def test_detect_native_formats(head, filename, expected):
    assert detect_format(head, filename) == expected


def test_lightgbm_parameters_section_is_cut(tmp_path):
    _, path = boosters.write_native("lgbm_binary.txt", tmp_path)
    raw = path.read_bytes()
    assert b"\nparameters:\n[boosting: gbdt]" in raw
    text = booster_files.lightgbm_text(raw)
    assert "parameters:" not in text and "[boosting: " not in text
    assert "\nTree=0\n" in text and "objective=binary" in text


@pytest.mark.parametrize(
    ("fmt", "data", "message"),
    [
        ("xgboost_json", b'{"learner": ', "invalid JSON"),
        ("xgboost_json", b'{"version": [3, 0, 0]}', "no learner"),
        ("xgboost_json", b'{"learner": {"gradient_booster": 1}}', "XGBoost cannot read"),
        ("xgboost_ubj", b"not ubjson", "not an XGBoost .ubj"),
        ("lightgbm_txt", b"tree\nversion=v4\nnum_class=1\x00", "NUL"),
        ("lightgbm_txt", b"tree\nversion=v4\n\xff\xfe", "not UTF-8"),
        ("lightgbm_txt", b"tree\nversion=v4\n\nparameters:\n[data: /etc/passwd]\n", "unterminated"),
    ],
)
def test_broken_native_files_are_load_errors(fmt, data, message):
    with pytest.raises(ModelLoadError, match=message):
        load_model(data, fmt)


def _crafted_file(tmp_path: Path, cls: type, state: object) -> Path:
    """A pickle that builds `cls.__new__(cls)` and sets `state` on it (NEWOBJ, then BUILD): what a
    crafted file can ask of an allowed class."""
    body = pickle.dumps(state, protocol=3)[2:-1]  # the state's opcodes, no header or STOP
    head = f"c{cls.__module__}\n{cls.__name__}\n".encode() + b")\x81"
    path = tmp_path / "crafted.joblib"
    path.write_bytes(b"\x80\x03" + head + body + b"b.")
    return path


@pytest.mark.parametrize(
    "state",
    [
        {"handle": bytearray(b"not a model")},
        {"handle": bytearray(b'{"learner": {"gradient_booster": {"name": "gbtree"}}}')},
        {"handle": "a string is not a buffer"},
        {"no handle": 1},
        ["not", "a", "dict"],
    ],
)
def test_crafted_xgboost_booster_state_is_a_load_error(tmp_path, state):
    with pytest.raises(ModelLoadError):
        load_joblib(_crafted_file(tmp_path, xgboost.Booster, state))


@pytest.mark.parametrize(
    "state",
    [{"_handle": "tree\nversion=v4\nnum_leaves=not a number"}, {"_handle": b"bytes"}, [1]],
)
def test_crafted_lightgbm_booster_state_is_a_load_error(tmp_path, state):
    with pytest.raises(ModelLoadError):
        load_joblib(_crafted_file(tmp_path, lightgbm.Booster, state))


def test_crafted_lightgbm_text_is_checked_before_lightgbm_parses_it(tmp_path):
    """LightGBM's parser aborts the process on some malformed trees: they never reach it."""
    text = boosters.fit("lgbm_binary").booster_.model_to_string()
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith("right_child="))
    numbers = lines[first].split("=", 1)[1].split()
    lines[first] = "right_child=" + " ".join(["500", *numbers[1:]])
    crafted = "\n".join(lines) + "\n"
    with pytest.raises(ModelLoadError, match="out of order or out of range"):
        load_joblib(_crafted_file(tmp_path, lightgbm.Booster, {"_handle": crafted}))


def test_pickled_catboost_model_is_refused_with_advice():
    # GLOBAL catboost.core CatBoostClassifier, EMPTY_TUPLE, NEWOBJ, STOP (protocol 3).
    payload = b"\x80\x03ccatboost.core\nCatBoostClassifier\n)\x81."
    with pytest.raises(UnsafeModelError, match="CatBoost models are not served: export"):
        load_joblib(payload)
    assert advice("sklearn.linear_model") == ""


def test_wrapper_with_a_forbidden_callable_objective_is_refused_at_load(tmp_path):
    """A pickle can only name allowed globals: a function as objective is refused by name."""
    model = boosters.fit("xgb_binary")
    model.objective = pickle.loads  # what a crafted file would hand XGBoost to call
    path = tmp_path / "objective.joblib"
    joblib.dump(model, path)
    with pytest.raises(UnsafeModelError, match=r"forbidden global _pickle\.loads"):
        load_joblib(path)
