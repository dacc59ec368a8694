"""The scikit-learn runtime: an estimator loaded through the safe loader and audited again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shared.safe_load import load_model
from workers.runtimes.base import Rows


class SklearnRuntime:
    """A scikit-learn estimator loaded through the safe loader."""

    name = "sklearn"

    def __init__(self, estimator: Any, feature_names: list[str] | None) -> None:
        self.estimator = estimator
        self.feature_names = feature_names

    @classmethod
    def load(cls, path: Path, fmt: str, input_schema: dict[str, Any] | None) -> SklearnRuntime:
        """Load and audit again (about a millisecond): a model that was validated by an older
        release, before an audit rule existed, must not be served past it."""
        from workers.validation.audit import audit_model

        names = (input_schema or {}).get("feature_names")
        estimator = load_model(path, fmt)
        audit_model(estimator)
        return cls(estimator, names)

    def _matrix(self, rows: Rows) -> Any:
        if not isinstance(rows, np.ndarray | list):
            return rows  # typed columns: already the frame pandas would build from the rows
        array = np.asarray(rows, dtype=np.float64)
        if self.feature_names is None:
            return array
        # A model fitted on a DataFrame gets one back (columns already in the model's order).
        import pandas as pd

        return pd.DataFrame(array, columns=self.feature_names)

    def predict(self, rows: Rows) -> list[Any]:
        """Predictions as the model's own labels (strings stay strings, floats stay floats), a
        clusterer's cluster numbers, an outlier detector's 1 (inlier) or -1 (outlier)."""
        return np.asarray(self.estimator.predict(self._matrix(rows))).tolist()

    def score_samples(self, rows: Rows) -> list[float]:
        """An outlier detector's score per row (the lower, the more abnormal)."""
        if not hasattr(self.estimator, "score_samples"):
            raise ValueError("this model has no score_samples")
        return np.asarray(self.estimator.score_samples(self._matrix(rows))).tolist()

    def predict_proba(self, rows: Rows) -> tuple[list[list[float]], list[Any]]:
        """Probabilities and class order; a model without predict_proba (LinearSVC, a clusterer,
        an outlier detector) says so (the web tier refuses such requests before they queue)."""
        if not hasattr(self.estimator, "predict_proba"):
            raise ValueError("this model cannot return probabilities (it has no predict_proba)")
        probabilities = self.estimator.predict_proba(self._matrix(rows))
        return np.asarray(probabilities).tolist(), np.asarray(self.estimator.classes_).tolist()
