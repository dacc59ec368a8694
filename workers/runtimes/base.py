"""The interface every model runtime answers: load an artifact once, then predict on row matrices.

The cache and the inference loop do not care which engine is behind a model; a new engine (e.g.
XGBoost, LightGBM) is one more module in this package implementing `ModelRuntime`.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

# A float64 matrix (what jobs carry), or rows of numbers (validation samples).
Rows = np.ndarray | list[list[float]]


class ModelRuntime(Protocol):
    name: str

    def predict(self, rows: Rows) -> list[Any]: ...

    def predict_proba(self, rows: Rows) -> tuple[list[list[float]], list[Any]]: ...
