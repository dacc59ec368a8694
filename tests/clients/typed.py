"""A model on typed columns for the client tests: a pipeline fitted on a frame of numbers (with
missing values), strings (with missing values), booleans and integers (its fixtures, `pipeline`
and `typed`, are in conftest.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

RNG = np.random.default_rng(11)
N = 160
FRAME = pd.DataFrame(
    {
        "age": RNG.normal(40, 12, N).round(1),
        "city": RNG.choice(["Oslo", "Rome", "Lima"], N),
        "member": RNG.choice([True, False], N),
        "rooms": RNG.choice([1, 2, 3], N),
        "plan": RNG.choice(["basic", "pro"], N),
    }
)
FRAME.loc[::6, "age"] = np.nan
FRAME.loc[::4, "city"] = np.nan
LABELS = np.where((FRAME["plan"] == "pro") ^ (FRAME["rooms"] > 1), "yes", "no")
NAMES = list(FRAME.columns)
# Rows as the REST API takes them (None = missing): the expected answers come from these.
ROWS = [
    [31.0, "Oslo", True, 2, "pro"],
    [None, None, False, 1, "basic"],
    [55.5, "Paris", False, 3, "basic"],  # a city the encoder did not see: ignored
    [20.0, "Lima", True, 1, "pro"],
]


def fit_typed() -> Pipeline:
    pre = ColumnTransformer(
        [
            ("age", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), ["age"]),
            (
                "city",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore"),
                ),
                ["city"],
            ),
            ("coded", OneHotEncoder(), ["member", "rooms", "plan"]),  # raises on unknown values
        ]
    )
    return make_pipeline(pre, LogisticRegression(max_iter=500)).fit(FRAME, LABELS)


def local_frame(rows: list[list]) -> pd.DataFrame:
    """The rows as the frame pandas builds locally (what the worker hands the model)."""
    frame = pd.DataFrame(rows, columns=NAMES)
    return frame.fillna({"age": math.nan}).astype({"age": "float64"})
