"""The baseline: a plain in-process Flask predictor (what a queue-based server is compared
with). Loads one joblib model at import and predicts inside the request.

Run: BENCH_MODEL=model.joblib gunicorn --workers 2 bench.baseline_app:app
"""

from __future__ import annotations

import os

import joblib
import numpy as np
from flask import Flask, jsonify, request

app = Flask(__name__)
_model = joblib.load(os.environ["BENCH_MODEL"])  # the benchmark's own file: trusted


@app.post("/predict")
def predict():
    rows = np.asarray(request.get_json()["inputs"], dtype=np.float64)
    return jsonify({"predictions": _model.predict(rows).tolist()})
