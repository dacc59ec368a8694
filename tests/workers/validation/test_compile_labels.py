"""Models that answer labels only (clusterers, outlier detectors, a classifier without
predict_proba) through the ONNX compiler: served by ONNX Runtime only with identical labels."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from shared.config import Settings
from shared.store import get_store
from tests.fixtures import zoo
from workers.runtimes.onnx import OnnxRuntime
from workers.runtimes.sklearn import SklearnRuntime
from workers.validation.compile import compile_model
from workers.validation.introspect import describe

pytestmark = pytest.mark.no_db


@pytest.mark.parametrize("name", sorted(zoo.LABELLERS))
def test_labels_only_models_compile_with_identical_labels_or_say_why(name):
    model = zoo.LABELLERS[name]()
    meta = describe(model)
    assert meta["output_schema"]["has_proba"] is False
    compiled = compile_model(model, meta, None, Settings()).save(uuid.uuid4())
    if compiled.stored is None:
        assert compiled.info["status"] == "fallback" and compiled.reason
        return
    onnx = OnnxRuntime.load(get_store().local_path(compiled.stored.key))
    far = np.full((2, zoo.N_FEATURES), 50.0)  # outliers, and rows far from every centre
    rows = np.vstack([zoo.probe_inputs(), far]).tolist()
    assert onnx.predict(rows) == SklearnRuntime(model, None).predict(rows)
