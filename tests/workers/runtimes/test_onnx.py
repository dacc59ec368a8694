"""The ONNX runtime (workers/runtimes/onnx.py): labels of the model's own types, ZipMap exports."""

from __future__ import annotations

import numpy as np
import pytest

from tests.fixtures import zoo
from workers.runtimes.onnx import OnnxRuntime
from workers.validation.compile import Candidate, convert
from workers.validation.introspect import describe

pytestmark = pytest.mark.no_db


def test_string_labels_come_back_as_strings():
    model = zoo.CLASSIFIERS["forest_string_labels"]()
    data = convert(model, 8, Candidate("float"), describe(model)["output_schema"]["classes"])
    runtime = OnnxRuntime.from_bytes(data)
    labels = runtime.predict(zoo.probe_inputs(5).tolist())
    assert all(isinstance(v, str) for v in labels)
    assert runtime.predict_proba([[0.0] * 8])[1] == ["high", "low", "mid"]


def test_zipmap_exports_give_probability_matrices(tmp_path):
    model = zoo.CLASSIFIERS["logistic_regression"]()
    runtime = OnnxRuntime.load(zoo.to_onnx_file(model, tmp_path / "m.onnx", zipmap=True))
    probabilities, classes = runtime.predict_proba(zoo.probe_inputs(3).tolist())
    assert classes == [0, 1, 2]
    np.testing.assert_allclose(
        probabilities, model.predict_proba(zoo.probe_inputs(3)), atol=1e-5, rtol=0
    )
