"""The baseline: a plain in-process Flask predictor (what a queue-based server is compared
with). Loads one joblib model at import and predicts inside the request; a model fitted on a
DataFrame gets the frame pandas builds from the rows, as a data scientist would call it.

Run: BENCH_MODEL=model.joblib gunicorn --workers 2 bench.baseline_app:app
"""

from __future__ import annotations

import os
from typing import Any

import joblib
import numpy as np
import pandas as pd
from flask import Flask, jsonify, request

app = Flask(__name__)
_model = joblib.load(os.environ["BENCH_MODEL"])  # the benchmark's own file: trusted
_names = getattr(_model, "feature_names_in_", None)


def _input(rows: list[Any]) -> Any:
    if _names is None:
        return np.asarray(rows, dtype=np.float64)
    return pd.DataFrame(rows, columns=list(_names))


@app.post("/predict")
def predict():
    rows = _input(request.get_json()["inputs"])
    return jsonify({"predictions": _model.predict(rows).tolist()})
