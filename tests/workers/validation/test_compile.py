"""Compiling to ONNX without Celery: conversion, equivalence, graph checks, the runtime choice."""

from __future__ import annotations

import json
import uuid
from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from shared import onnx_graph
from shared.config import Settings
from shared.runtime_choice import choose_runtime
from shared.store import get_store
from tests.fixtures import zoo
from workers.runtimes.onnx import OnnxRuntime
from workers.runtimes.sklearn import SklearnRuntime
from workers.validation.compile import Candidate, candidates, compile_model, convert
from workers.validation.equivalence import compare, numeric_rows, probe_rows
from workers.validation.introspect import describe

pytestmark = pytest.mark.no_db
SETTINGS = Settings()


def _compile(model):
    meta = describe(model)
    return meta, compile_model(model, meta, None, SETTINGS).save(uuid.uuid4())


def _runtimes(model, compiled):
    names = describe(model)["input_schema"]["feature_names"]
    onnx_path = get_store().local_path(compiled.stored.key)
    return SklearnRuntime(model, names), OnnxRuntime.load(onnx_path)


@pytest.mark.parametrize("name", sorted(zoo.CLASSIFIERS))
def test_classifiers_compile_and_agree(name):
    model = zoo.CLASSIFIERS[name]()
    _, compiled = _compile(model)
    assert compiled.info["status"] == "compiled", compiled.reason
    assert compiled.stored.sha256 == compiled.info["sha256"]
    sk, ox = _runtimes(model, compiled)
    rows = zoo.probe_inputs().tolist()
    assert ox.predict(rows) == sk.predict(rows)  # same labels, same Python types
    (p_sk, c_sk), (p_ox, c_ox) = sk.predict_proba(rows), ox.predict_proba(rows)
    assert c_ox == c_sk
    np.testing.assert_allclose(p_ox, p_sk, atol=SETTINGS.onnx_proba_atol, rtol=0)


@pytest.mark.parametrize("name", sorted(zoo.REGRESSORS))
def test_regressors_compile_or_say_why(name):
    model = zoo.REGRESSORS[name]()
    _, compiled = _compile(model)
    if compiled.stored is None:  # allowed for float tree sums: the reason must say so
        assert "ONNX_REGRESSION_RTOL" in compiled.reason
        return
    sk, ox = _runtimes(model, compiled)
    rows = np.random.default_rng(3).normal(size=(40, zoo.N_FEATURES)).tolist()
    expected = np.asarray(sk.predict(rows))
    got = np.asarray(ox.predict(rows))
    scale = np.abs(expected).max()
    assert np.abs(got - expected).max() <= SETTINGS.onnx_regression_rtol * scale


def test_tree_models_use_the_exact_feed():
    forest = zoo.CLASSIFIERS["random_forest_100"]()
    assert candidates(forest)[0] == Candidate("double", round_float32=True)
    assert candidates(zoo.CLASSIFIERS["logistic_regression"]())[0] == Candidate("double")
    _, compiled = _compile(forest)
    assert compiled.info["tensor_type"] == "double"
    assert OnnxRuntime.load(get_store().local_path(compiled.stored.key)).round_float32


def test_unconvertible_estimator_falls_back_with_reason():
    x, y = zoo.classification()
    _, compiled = _compile(DummyClassifier(strategy="prior").fit(x, y))
    assert compiled.stored is None
    assert compiled.info["status"] == "fallback"
    assert "DummyClassifier" in compiled.reason


def test_disabled_and_oversized_models_are_not_compiled():
    model = zoo.CLASSIFIERS["logistic_regression"]()
    meta = describe(model)
    off = compile_model(model, meta, None, Settings(ONNX_ENABLED="false"))
    assert off.stored is None and off.info["status"] == "disabled"
    big = compile_model(model, meta, None, Settings(ONNX_MAX_MODEL_MB=1), 2 << 20)
    assert big.stored is None and "ONNX_MAX_MODEL_MB" in big.reason


def test_a_single_differing_label_is_refused():
    model = zoo.CLASSIFIERS["logistic_regression"]()
    rows = zoo.probe_inputs().tolist()
    schema = describe(model)["output_schema"]
    liar = SimpleNamespace(
        predict=lambda r: [*model.predict(np.asarray(r))[:-1].tolist(), 99],
        predict_proba=lambda r: (model.predict_proba(np.asarray(r)).tolist(), [0, 1, 2]),
    )
    verdict = compare(SklearnRuntime(model, None), liar, rows, schema, 1e-6, 1e-6)
    assert not verdict.equivalent and "1 of 40" in verdict.reason


def test_probabilities_outside_tolerance_are_refused():
    model = zoo.CLASSIFIERS["logistic_regression"]()
    rows = zoo.probe_inputs().tolist()
    schema = describe(model)["output_schema"]
    noisy = SimpleNamespace(
        predict=lambda r: model.predict(np.asarray(r)).tolist(),
        predict_proba=lambda r: ((model.predict_proba(np.asarray(r)) + 1e-5).tolist(), [0, 1, 2]),
    )
    verdict = compare(SklearnRuntime(model, None), noisy, rows, schema, 1e-6, 1e-6)
    assert not verdict.equivalent and "ONNX_PROBA_ATOL" in verdict.reason


def test_probe_rows_include_sample_zeros_and_scaler_scale():
    pipe = zoo.CLASSIFIERS["scaler_logreg_pipeline"]()
    sample = [dict(zip(zoo.COLUMNS, range(8), strict=True)), ["not", "numbers"]]
    rows = probe_rows(pipe, 8, numeric_rows(sample, zoo.COLUMNS, 8))
    assert rows[0] == [float(i) for i in range(8)]  # the uploader's (valid) row comes first
    assert rows[1] == [0.0] * 8
    scaled = np.asarray(rows[-256:])
    scaler = pipe.named_steps["scale"]
    np.testing.assert_allclose(scaled.mean(axis=0), scaler.mean_, atol=0.3 * scaler.scale_.max())


def test_graph_checks(tmp_path):
    with pytest.raises(onnx_graph.OnnxGraphError, match="custom operator domains"):
        onnx_graph.check(zoo.load_onnx(zoo.custom_domain_onnx(tmp_path / "c.onnx")))
    with pytest.raises(onnx_graph.OnnxGraphError, match="external data"):
        onnx_graph.check(zoo.load_onnx(zoo.external_data_onnx(tmp_path / "e.onnx")))
    with pytest.raises(onnx_graph.NotOnnxError):
        onnx_graph.parse(b"\x80\x04definitely not protobuf")
    model = zoo.CLASSIFIERS["logistic_regression"]()
    proto = zoo.load_onnx(zoo.to_onnx_file(model, tmp_path / "ok.onnx"))
    onnx_graph.check(proto)
    assert onnx_graph.input_spec(proto) == (8, "float32")
    assert onnx_graph.output_schema(proto) == {
        "task": "classification",
        "classes": [0, 1, 2],
        "has_proba": True,
    }


def test_classes_metadata_is_written():
    model = zoo.CLASSIFIERS["logistic_regression"]()
    data = convert(model, 8, Candidate("double"), [0, 1, 2])
    props = {p.key: p.value for p in onnx_graph.parse(data).metadata_props}
    assert json.loads(props[onnx_graph.CLASSES_PROP]) == [0, 1, 2]


def test_choose_runtime():
    info = {"reason": "ONNX Runtime matches"}
    assert choose_runtime("joblib", "auto", "k.onnx", info) == ("onnx", "ONNX Runtime matches")
    runtime, reason = choose_runtime("joblib", "sklearn", "k.onnx", info)
    assert runtime == "sklearn" and "forced" in reason and "ONNX Runtime matches" in reason
    assert choose_runtime("joblib", "auto", None, {"reason": "no converter"}) == (
        "sklearn",
        "no converter",
    )
    assert choose_runtime("onnx", "auto", None, None)[0] == "onnx"
