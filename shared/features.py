"""Rows in a model's feature order: the one rule for rows sent as objects keyed by feature name,
used by the web tier's input check, the validation of an upload's sample and the equivalence
probe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


class FeatureMismatch(ValueError):
    """An object row whose keys are not exactly the model's feature names."""

    def __init__(self, missing: list[str], unexpected: list[str]) -> None:
        super().__init__("row keys must be exactly the model's feature names")
        self.missing = missing
        self.unexpected = unexpected


def in_feature_order(row: Any, names: Sequence[str] | None) -> Any:
    """An object row as the list of its values in `names`' order; any other row (a list, or an
    object for a model without feature names) as it is."""
    if not isinstance(row, dict) or not names:
        return row
    if row.keys() != set(names):
        missing = sorted(set(names) - row.keys())
        raise FeatureMismatch(missing, sorted(row.keys() - set(names)))
    return [row[name] for name in names]
