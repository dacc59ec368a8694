"""The LightGBM runtime: a model uploaded as LightGBM's own text file, served by LightGBM behind
the same interface as SklearnRuntime (workers/runtimes/base.py).

Answers as LGBMClassifier and LGBMRegressor would for the same booster: a file records no class
labels, so classes are 0..n-1, a label is the most probable class (binary: probability > 0.5).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm
import numpy as np

from shared.booster_files import header_value, load_lightgbm
from workers.runtimes.base import Rows, both_columns, class_indices

_CLASSIFICATION = ("binary", "multiclass", "multiclassova")


class LightGBMRuntime:
    """A lightgbm.Booster read from its text file, with what its header says it predicts."""

    name = "lightgbm"

    def __init__(self, booster: lightgbm.Booster, text: str) -> None:
        self.booster = booster
        self.text = text
        self.objective = (header_value(text, "objective") or "regression").split(" ", 1)[0]
        self.n_features = int(booster.num_feature())
        self.classifier = self.objective in _CLASSIFICATION
        n_classes = int(header_value(text, "num_class") or 1)
        self.classes = list(range(max(n_classes, 2))) if self.classifier else None
        self.has_proba = self.classifier
        names = [str(n) for n in booster.feature_name()]
        # LightGBM names the columns of an unnamed matrix itself: those are no names.
        default = [f"Column_{i}" for i in range(self.n_features)]
        self.feature_names = None if names == default else names

    @classmethod
    def from_bytes(cls, data: bytes) -> LightGBMRuntime:
        return cls(*load_lightgbm(data))

    @classmethod
    def load(cls, path: Path, fmt: str = "lightgbm_txt") -> LightGBMRuntime:
        """Load, its trees checked again (as SklearnRuntime audits again): a model validated
        before a check existed must not be served past it."""
        return cls.from_bytes(Path(path).read_bytes())

    def _raw(self, rows: Rows) -> np.ndarray:
        # Always an array (a string here would be read by LightGBM as a file to predict).
        return np.asarray(self.booster.predict(np.asarray(rows, dtype=np.float64)))

    def predict(self, rows: Rows) -> list[Any]:
        out = self._raw(rows)
        if not self.classifier:
            return out.tolist()
        return class_indices(out)

    def predict_proba(self, rows: Rows) -> tuple[list[list[float]], list[Any]]:
        if not self.has_proba:
            raise ValueError(
                f"a LightGBM model with objective {self.objective} has no probabilities"
            )
        return both_columns(self._raw(rows)), list(self.classes or [])
