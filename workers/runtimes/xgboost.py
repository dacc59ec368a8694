"""The XGBoost runtime: a model uploaded as XGBoost's own file (.json or .ubj), served by XGBoost
behind the same interface as SklearnRuntime (workers/runtimes/base.py).

Answers as XGBClassifier and XGBRegressor would for the same booster: a file records no class
labels, so classes are 0..n-1, a label is the most probable class (binary: probability > 0.5).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import xgboost

from shared.booster_files import load_xgboost
from workers.runtimes.base import Rows, both_columns, class_indices

# Objectives whose output is class probabilities, and those whose output is a label already.
_PROBA_OBJECTIVES = ("binary:logistic", "multi:softprob")
_LABEL_OBJECTIVES = ("binary:hinge", "multi:softmax", "binary:logitraw")


class XGBoostRuntime:
    """An xgboost.Booster read from its own file, with what its configuration says it predicts."""

    name = "xgboost"

    def __init__(self, booster: xgboost.Booster) -> None:
        self.booster = booster
        learner = json.loads(booster.save_config())["learner"]
        self.objective = str(learner["objective"]["name"])
        params = learner["learner_model_param"]
        self.n_features = int(params["num_feature"])
        n_classes = int(params["num_class"])
        self.classifier = self.objective.startswith(("binary:", "multi:"))
        self.classes = list(range(max(n_classes, 2))) if self.classifier else None
        self.has_proba = self.objective in _PROBA_OBJECTIVES
        self.feature_names = list(booster.feature_names) if booster.feature_names else None
        # gblinear has no in-place prediction (XGBRegressor falls back to a DMatrix too).
        self.inplace = learner["gradient_booster"]["name"] != "gblinear"

    @classmethod
    def from_bytes(cls, data: bytes, fmt: str) -> XGBoostRuntime:
        return cls(load_xgboost(data, fmt))

    @classmethod
    def load(cls, path: Path, fmt: str) -> XGBoostRuntime:
        """Load, its trees checked again (as SklearnRuntime audits again): a model validated
        before a check existed must not be served past it."""
        return cls.from_bytes(Path(path).read_bytes(), fmt)

    def _raw(self, rows: Rows) -> np.ndarray:
        array = np.asarray(rows, dtype=np.float64)
        if self.inplace:
            return np.asarray(self.booster.inplace_predict(array))
        return np.asarray(self.booster.predict(xgboost.DMatrix(array)))

    def predict(self, rows: Rows) -> list[Any]:
        out = self._raw(rows)
        if not self.classifier:
            return out.tolist()
        if self.objective == "binary:logitraw":
            return (out > 0).astype(np.int64).tolist()
        if self.objective in _LABEL_OBJECTIVES:
            return out.astype(np.int64).tolist()
        return class_indices(out)

    def predict_proba(self, rows: Rows) -> tuple[list[list[float]], list[Any]]:
        if not self.has_proba:
            raise ValueError(
                f"an XGBoost model with objective {self.objective} has no probabilities"
            )
        return both_columns(self._raw(rows)), list(self.classes or [])
