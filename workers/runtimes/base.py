"""The interface every model runtime answers: load an artifact once, then predict on row matrices
(and the two score conversions the booster runtimes share).

The cache and the inference loop do not care which engine is behind a model; a new engine (e.g.
XGBoost, LightGBM) is one more module in this package implementing `ModelRuntime`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

# A float64 matrix (what jobs of all-numeric models carry), rows of numbers (validation samples),
# or a pandas DataFrame of typed columns (shared/jobs/inputs.py), which only runtimes that record
# typed columns receive.
Rows: TypeAlias = "np.ndarray | list[list[float]] | pd.DataFrame"


def class_indices(scores: np.ndarray) -> list[int]:
    """A booster's class per row, as its scikit-learn wrapper picks it: the largest of one
    probability column per class, or a binary model's positive-class probability over 0.5."""
    if scores.ndim == 2:
        return np.argmax(scores, axis=1).tolist()
    return (scores > 0.5).astype(np.int64).tolist()


def both_columns(scores: np.ndarray) -> list[list[float]]:
    """Probabilities with one column per class: a binary booster answers only the positive
    class's, which its wrapper pairs with the negative one."""
    if scores.ndim == 1:
        scores = np.column_stack([1 - scores, scores])
    return scores.tolist()


class ModelRuntime(Protocol):
    name: str

    def predict(self, rows: Rows) -> list[Any]: ...

    def predict_proba(self, rows: Rows) -> tuple[list[list[float]], list[Any]]: ...

    # Only scikit-learn's runtime has score_samples: jobs asking for scores are predicted there
    # (workers/runtimes/selection.py).
    def score_samples(self, rows: Rows) -> list[float]: ...
