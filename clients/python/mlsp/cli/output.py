"""Output of the CLI: JSON for scripts (`--json`), rich tables for people."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from mlsp.cli.config import State
from mlsp.resources import Job, JobGroup, Model, Resource


def console(stderr: bool = False) -> Console:
    # Built per use: the streams may be swapped (tests, pipes) after import.
    return Console(stderr=stderr, soft_wrap=False)


def _plain(data: Any) -> Any:
    if isinstance(data, Resource | JobGroup):
        return data.raw
    if isinstance(data, list):
        return [_plain(d) for d in data]
    return data


def emit(state: State, data: Any, render: Callable[[Any], Any] | None = None) -> None:
    """Print `data` as JSON (`--json`, or nothing better to show) or as `render(data)`."""
    if state.json or render is None:
        click.echo(json.dumps(_plain(data), indent=2, default=str))
    else:
        console().print(render(data))


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], title: str | None = None) -> Table:
    """A rich table; None shows as an empty cell; long values wrap (ids are never cut)."""
    out = Table(title=title, header_style="bold")
    for column in columns:
        out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*("" if v is None else str(v) for v in row))
    return out


def fields(obj: dict[str, Any], keys: Sequence[str]) -> Table:
    """A two-column table of selected fields."""
    return table(["field", "value"], [(k, _cell(obj.get(k))) for k in keys])


def _cell(value: Any) -> Any:
    return json.dumps(value, default=str) if isinstance(value, dict | list) else value


def models_table(models: list[Model]) -> Table:
    return table(
        ["id", "name", "version", "status", "runtime", "features", "created"],
        [
            (
                m.id,
                m.name,
                m.version,
                m.status,
                m.raw.get("runtime"),
                m.n_features,
                str(m.raw.get("created_at", ""))[:19],
            )
            for m in models
        ],
    )


MODEL_FIELDS = (
    "id",
    "name",
    "version",
    "status",
    "framework",
    "format",
    "runtime",
    "runtime_reason",
    "description",
    "input_schema",
    "output_schema",
    "size_bytes",
    "sha256",
    "error",
    "created_at",
)


def model_view(model: Model) -> Table:
    return fields(model.raw, MODEL_FIELDS)


def jobs_table(jobs: list[Job], names: dict[str, str] | None = None) -> Table:
    """Jobs with their model's NAME:VERSION (`names`: model id -> name; else a short id)."""
    names = names or {}
    return table(
        ["id", "model", "status", "rows", "total ms", "created"],
        [
            (
                j.id,
                f"{names.get(j.raw['model_id'], j.raw['model_id'][:8])}:{j.raw['model_version']}",
                j.status,
                len(j.predictions) if j.predictions is not None else None,
                _ms((j.raw.get("timings") or {}).get("total_ms")),
                str(j.raw["created_at"])[:19],
            )
            for j in jobs
        ],
    )


def _ms(value: float | None) -> str | None:
    return None if value is None else f"{value:.1f}"


def _share(value: float | None) -> str | None:
    return None if value is None else f"{value:.1%}"


def analytics_view(report: dict[str, Any]) -> Table:
    """Counts and rates, latency percentiles per timing, then one line per day."""
    counts = table(
        ["jobs", "succeeded", "failed", "success rate", "rows predicted", "cache hits"],
        [
            (
                report["total"],
                report["by_status"].get("succeeded"),
                report["by_status"].get("failed"),
                _share(report["success_rate"]),
                report["rows_predicted"],
                _share(report["cache_hit_rate"]),
            )
        ],
        title=f"last {report['days']} days",
    )
    latency = table(
        ["ms", "p50", "p95", "p99", "mean"],
        [
            (name, *(_ms(stats.get(k)) for k in ("p50", "p95", "p99", "mean")))
            for name, stats in report["latency_ms"].items()
        ],
    )
    daily = table(
        ["day", "jobs", "failed", "mean total ms"],
        [(d["date"], d["total"], d["failed"], _ms(d["mean_total_ms"])) for d in report["daily"]],
    )
    grid = Table.grid()
    for part in (counts, latency, daily):
        grid.add_row(part)
    return grid


JOB_FIELDS = ("id", "model_id", "model_version", "status", "error", "timings")
GROUP_FIELDS = ("jobs", "status", "error")


def job_view(job: Job | JobGroup) -> Table:
    """Status, error and timings, then the predictions (first 50 rows)."""
    summary = fields(job.raw, GROUP_FIELDS if isinstance(job, JobGroup) else JOB_FIELDS)
    if not job.predictions:
        return summary
    grid = Table.grid()
    grid.add_row(summary)
    grid.add_row(predictions_table(job))
    return grid


def predictions_table(job: Job | JobGroup, limit: int = 50) -> Table:
    classes = job.classes or []
    probabilities = job.probabilities or [[] for _ in job.predictions or []]
    rows = [
        (i, p, *(f"{x:.4f}" for x in probs))
        for i, (p, probs) in enumerate(zip(job.predictions or [], probabilities, strict=False))
    ]
    more = len(rows) - limit
    title = f"first {limit} of {len(rows)} rows (--json for all)" if more > 0 else None
    return table(["row", "prediction", *(f"P({c})" for c in classes)], rows[:limit], title)
