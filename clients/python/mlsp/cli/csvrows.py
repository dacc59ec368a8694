"""Reading feature rows from a CSV file and writing them back with their predictions."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mlsp.resources import Job, Model


@dataclass
class Layout:
    """Where the model's features are in each CSV row."""

    header: list[str] | None  # the file's header row; None when it starts with data
    columns: list[int]  # CSV column of each feature, in the model's order


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
        return Layout(first_row, [first_row.index(n) for n in names])
    columns = [i for i, name in enumerate(first_row) if name not in keep]
    if len(columns) != model.n_features:
        kept = f" besides {', '.join(keep)}" if keep else ""
        raise click.UsageError(
            f"the CSV has {len(columns)} columns{kept}; the model takes {model.n_features}"
            " features (name other columns with --id-column or --keep-columns)"
        )
    header = None if not keep and all(_is_number(v) for v in first_row) else first_row
    return Layout(header, columns)


def _check_kept(header: list[str], keep: tuple[str, ...], features: list[str]) -> None:
    if missing := [name for name in keep if name not in header]:
        raise click.UsageError(f"the CSV header lacks the kept columns {missing[:5]}")
    if clash := [name for name in keep if name in features]:
        raise click.UsageError(f"{clash[:5]} are the model's features, not columns to keep")


def features(row: list[str], layout: Layout, line: int) -> list[float]:
    """The row's feature values, checked here so a bad cell is named before anything is sent."""
    values = []
    for col in layout.columns:
        try:
            value = float(row[col])
        except (ValueError, IndexError):
            value = math.nan
        if not math.isfinite(value):
            cell = row[col] if col < len(row) else ""
            raise click.UsageError(f"line {line}, column {col + 1}: {cell!r} is not a number")
        values.append(value)
    return values


def chunks(
    rows: Iterable[list[str]], layout: Layout, size: int, first_line: int
) -> Iterator[tuple[list[list[str]], list[list[float]]]]:
    """(original rows, feature rows) in chunks of `size`."""
    raw: list[list[str]] = []
    parsed: list[list[float]] = []
    for line, row in enumerate(rows, start=first_line):
        raw.append(row)
        parsed.append(features(row, layout, line))
        if len(raw) == size:
            yield raw, parsed
            raw, parsed = [], []
    if raw:
        yield raw, parsed


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
