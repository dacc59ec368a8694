"""Reading feature rows from a CSV file and writing them back with their predictions.

Each cell is read as its column's type in the model's input schema (`input_schema.columns`):
numbers and integers parsed, strings kept, booleans from true/false; an empty cell is a missing
value (null), which the server takes where the model does and refuses, naming the row and
column, where it does not. Columns the model does not describe are numbers.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from mlsp.resources import Job, Model


@dataclass
class Layout:
    """Where the model's features are in each CSV row, and what type each holds."""

    header: list[str] | None  # the file's header row; None when it starts with data
    columns: list[int]  # CSV column of each feature, in the model's order
    dtypes: list[str] = field(default_factory=list)  # each feature's dtype, in the same order

    def name(self, feature: int) -> str:
        """How an error names a feature: its header name, else its CSV column number."""
        col = self.columns[feature]
        return repr(self.header[col]) if self.header else str(col + 1)


def dtypes_of(model: Model) -> list[str] | None:
    """The model's column types in feature order, when its input schema records them."""
    columns = (model.raw.get("input_schema") or {}).get("columns")
    return [c.get("dtype", "number") for c in columns] if columns else None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def layout_of(first_row: list[str], model: Model, keep: tuple[str, ...] = ()) -> Layout:
    """A model with feature names needs a header naming them (other columns pass through);
    otherwise every column is a feature, with or without a header row, except the `keep`
    columns (an id, say), which then need a header naming them and pass through too."""
    names = model.feature_names
    if keep:
        _check_kept(first_row, keep, names or [])
    if names:
        missing = [n for n in names if n not in first_row]
        if missing:
            raise click.UsageError(f"the CSV header lacks the model's features {missing[:5]}")
        return _typed(Layout(first_row, [first_row.index(n) for n in names]), model)
    columns = [i for i, name in enumerate(first_row) if name not in keep]
    if len(columns) != model.n_features:
        kept = f" besides {', '.join(keep)}" if keep else ""
        raise click.UsageError(
            f"the CSV has {len(columns)} columns{kept}; the model takes {model.n_features}"
            " features (name other columns with --id-column or --keep-columns)"
        )
    header = None if not keep and all(_is_number(v) for v in first_row) else first_row
    return _typed(Layout(header, columns), model)


def _typed(layout: Layout, model: Model) -> Layout:
    dtypes = dtypes_of(model)
    layout.dtypes = dtypes if dtypes and len(dtypes) == len(layout.columns) else []
    layout.dtypes = layout.dtypes or ["number"] * len(layout.columns)
    return layout


def _check_kept(header: list[str], keep: tuple[str, ...], features: list[str]) -> None:
    if missing := [name for name in keep if name not in header]:
        raise click.UsageError(f"the CSV header lacks the kept columns {missing[:5]}")
    if clash := [name for name in keep if name in features]:
        raise click.UsageError(f"{clash[:5]} are the model's features, not columns to keep")


def features(row: list[str], layout: Layout, line: int) -> list[Any]:
    """The row's feature values, each parsed as its column's type; a bad cell is named here,
    before anything is sent."""
    values = []
    for col, dtype in zip(layout.columns, layout.dtypes, strict=True):
        if col >= len(row):
            raise click.UsageError(f"line {line} has {len(row)} cells; column {col + 1} is missing")
        values.append(_parse(row[col], dtype, line, col))
    return values


_BOOLEANS = {"true": True, "false": False}


def _parse(cell: str, dtype: str, line: int, col: int) -> Any:
    """A cell as its column's type: an empty cell is a missing value (null), as pandas reads it."""
    if cell == "":
        return None
    if dtype == "string":
        return cell
    if dtype == "boolean":
        if (value := _BOOLEANS.get(cell.strip().lower())) is None:
            raise click.UsageError(f"line {line}, column {col + 1}: {cell!r} is not true or false")
        return value
    try:
        number = float(cell)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise click.UsageError(f"line {line}, column {col + 1}: {cell!r} is not a number")
    if dtype == "integer":
        if not number.is_integer():
            raise click.UsageError(f"line {line}, column {col + 1}: {cell!r} is not an integer")
        return int(cell) if cell.strip().lstrip("+-").isdigit() else int(number)
    return number


def chunks(
    rows: Iterable[list[str]], layout: Layout, size: int, first_line: int
) -> Iterator[tuple[int, list[list[str]], list[list[Any]]]]:
    """(first line, original rows, feature rows) in chunks of `size`."""
    raw: list[list[str]] = []
    parsed: list[list[Any]] = []
    start = first_line
    for line, row in enumerate(rows, start=first_line):
        raw.append(row)
        parsed.append(features(row, layout, line))
        if len(raw) == size:
            yield start, raw, parsed
            raw, parsed, start = [], [], line + 1
    if raw:
        yield start, raw, parsed


def count_rows(path: Path) -> int:
    """Rows in the file (a quick first pass, for the progress bar)."""
    with open(path, newline="") as fh:
        return sum(1 for _ in csv.reader(fh))


def result_columns(model: Model, proba: bool) -> list[str]:
    classes = (model.raw.get("output_schema") or {}).get("classes") or []
    return ["prediction", *(f"proba_{c}" for c in classes)] if proba else ["prediction"]


def output_rows(raw: list[list[str]], job: Job) -> Iterator[list[Any]]:
    """Each original row followed by its prediction (and probabilities)."""
    probabilities = job.probabilities or [[] for _ in raw]
    for row, label, probs in zip(raw, job.predictions or [], probabilities, strict=True):
        yield [*row, label, *probs]
