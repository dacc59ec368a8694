"""One chunk of a batch: claim it (attempts + 1 is its fencing token; only a `queued` chunk is
claimed, so a duplicate message never steals a running one), read its row group,
convert its cells (a bad cell fails its row), predict through the same runtimes and cache as
jobs, write its part file, and record it done only if no later run claimed it meanwhile.

A chunk claimed more than JOB_MAX_ATTEMPTS times (its worker died each time) is not predicted
again: its rows are written as failed, so a poison chunk cannot crash-loop the pool.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import text

from shared import failures
from shared.batches import cells, files
from shared.config import get_settings
from shared.db import session_scope
from shared.jobs import inputs
from shared.store import get_store
from workers import metrics
from workers.runtimes.cache import model_cache
from workers.runtimes.selection import cache_entry
from workers.serving import model_refs

log = logging.getLogger(__name__)

# Rows predicted together when a chunk's one call failed: a failing slice then goes row by row.
RETRY_SLICE_ROWS = 256

_CLAIM = text(
    "UPDATE batch_chunks c SET status = 'running', attempts = c.attempts + 1,"
    " worker = :worker, updated_at = now()"
    " FROM batches b JOIN models m ON m.id = b.model_id"
    " WHERE c.batch_id = :batch AND c.index = :index AND c.status = 'queued'"
    " AND b.id = c.batch_id AND b.status = 'running'"
    " RETURNING c.attempts, b.model_id, b.keep_columns, b.return_probabilities,"
    " m.output_schema"
)
_DONE = text(
    "WITH done AS (UPDATE batch_chunks SET status = 'done', part_key = :part,"
    " rows_failed = :failed, updated_at = now()"
    " WHERE batch_id = :batch AND index = :index AND attempts = :attempt AND status = 'running'"
    " RETURNING row_count, rows_failed)"
    " UPDATE batches b SET rows_done = b.rows_done + done.row_count,"
    " rows_failed = b.rows_failed + done.rows_failed, chunks_done = b.chunks_done + 1"
    " FROM done WHERE b.id = :batch"
    " RETURNING b.chunks_done = b.chunks_total AS complete"
)


@dataclass
class Claim:
    attempt: int
    model_id: uuid.UUID
    keep: list[str]
    probabilities: bool
    output_schema: dict[str, Any]


def run_chunk(batch_id: uuid.UUID, index: int, worker: str) -> bool:
    """Predict one chunk; True when it was the batch's last (its result is to be written)."""
    claim = _claim(batch_id, index, worker)
    if claim is None:
        return False  # done already, or the batch was cancelled or failed
    store = get_store()
    rows = files.read_chunk(store.local_path(files.rows_key(str(batch_id))), index)
    if claim.attempt > get_settings().job_max_attempts:
        message = f"{failures.WORKER_LOST}: this chunk's worker died {claim.attempt - 1} times"
        output = _output(rows, claim, None, np.full(rows.num_rows, message, dtype=object))
    else:
        output = _predicted(rows, claim)
    key = files.part_key(str(batch_id), index, claim.attempt)
    files.write_part(output, store, key)
    failed = int(pa.compute.sum(pa.compute.not_equal(output.column("error"), "")).as_py() or 0)
    complete = _record(batch_id, index, claim.attempt, key, failed)
    if complete is None:  # a later run claimed it: that one writes it
        store.delete(key)
        return False
    metrics.batch_rows(output.num_rows - failed, failed)
    return complete


def _claim(batch_id: uuid.UUID, index: int, worker: str) -> Claim | None:
    with session_scope() as session:
        row = session.execute(_CLAIM, {"batch": batch_id, "index": index, "worker": worker}).first()
    if row is None:
        return None
    return Claim(
        row.attempts,
        row.model_id,
        list(row.keep_columns),
        row.return_probabilities,
        row.output_schema or {},
    )


def _record(batch_id: uuid.UUID, index: int, attempt: int, key: str, failed: int) -> bool | None:
    params = {"batch": batch_id, "index": index, "attempt": attempt, "part": key, "failed": failed}
    with session_scope() as session:
        row = session.execute(_DONE, params).first()
    return None if row is None else bool(row.complete)


def _predicted(rows: pa.Table, claim: Claim) -> pa.Table:
    with session_scope() as session:
        ref = model_refs.load_model_ref(session, claim.model_id)
    if ref is None or not ref.servable:
        message = "the model is no longer ready (disabled or deleted)"
        return _output(rows, claim, None, np.full(rows.num_rows, message, dtype=object))
    converted = cells.convert(rows, ref.input_schema or {})
    errors = converted.errors
    answers = None
    if converted.valid.any():
        answers = _predict(ref, converted.model_input, claim.probabilities)
        valid_rows = np.flatnonzero(converted.valid)
        errors[valid_rows] = answers.errors
    return _output(rows, claim, (converted.valid, answers), errors)


@dataclass
class Answers:
    predictions: list[Any]
    probabilities: list[list[float]] | None
    errors: np.ndarray  # per predicted row, "" when it was answered


def _predict(ref: model_refs.ModelRef, model_input: Any, probabilities: bool) -> Answers:
    n = len(model_input)
    missing = inputs.has_missing(model_input)
    key, size, loader = cache_entry(
        ref, get_store(), n, get_settings().onnx_max_batch_rows, missing
    )
    runtime, _ = model_cache().get_or_load(key, size, loader)
    try:
        return _call(runtime, model_input, probabilities)
    except (SoftTimeLimitExceeded, MemoryError):
        raise
    except Exception:
        log.info("a chunk's predict call failed; predicting it in slices")
    parts = [
        _isolated(runtime, _rows(model_input, start, start + RETRY_SLICE_ROWS), probabilities)
        for start in range(0, n, RETRY_SLICE_ROWS)
    ]
    return Answers(
        [p for part in parts for p in part.predictions],
        None if not probabilities else [p for part in parts for p in part.probabilities or []],
        np.concatenate([part.errors for part in parts]),
    )


def _call(runtime: Any, model_input: Any, probabilities: bool) -> Answers:
    predictions = runtime.predict(model_input)
    proba = runtime.predict_proba(model_input)[0] if probabilities else None
    return Answers(predictions, proba, np.full(len(predictions), "", dtype=object))


def _isolated(runtime: Any, model_input: Any, probabilities: bool) -> Answers:
    """A slice predicted at once, or (when that fails) row by row: one bad row fails alone."""
    try:
        return _call(runtime, model_input, probabilities)
    except (SoftTimeLimitExceeded, MemoryError):
        raise
    except Exception:
        log.debug("a slice's predict call failed; predicting it row by row")
    out = Answers([], [] if probabilities else None, np.full(len(model_input), "", dtype=object))
    for i in range(len(model_input)):
        try:
            one = _call(runtime, _rows(model_input, i, i + 1), probabilities)
            out.predictions.append(one.predictions[0])
            if probabilities:
                out.probabilities.append(one.probabilities[0])  # type: ignore[union-attr, index]
        except (SoftTimeLimitExceeded, MemoryError):
            raise
        except Exception as exc:
            out.predictions.append(None)
            if probabilities:
                out.probabilities.append(None)  # type: ignore[union-attr, arg-type]
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            out.errors[i] = f"{failures.INFERENCE_ERROR}: {type(exc).__name__}: {first}"[:300]
    return out


def _rows(model_input: Any, start: int, stop: int) -> Any:
    if isinstance(model_input, np.ndarray):
        return model_input[start:stop]
    return model_input.iloc[start:stop].reset_index(drop=True)


def _output(
    rows: pa.Table,
    claim: Claim,
    answered: tuple[np.ndarray, Answers | None] | None,
    errors: np.ndarray,
) -> pa.Table:
    """The chunk's output rows: kept columns, `prediction`, `proba_<class>` when asked, and
    `error` ("" unless the row failed), typed by the model's output so that every part of a
    batch has one schema."""
    n = rows.num_rows
    label_type = _label_type(claim.output_schema)
    predictions = np.full(n, None, dtype=object)
    classes = claim.output_schema.get("classes") or []
    proba = np.full((n, len(classes)), np.nan) if claim.probabilities else None
    if answered is not None and answered[1] is not None:
        valid, answers = answered
        where = np.flatnonzero(valid)
        ok = answers.errors == ""
        predictions[where[ok]] = np.asarray(answers.predictions, dtype=object)[ok]
        if proba is not None and answers.probabilities is not None:
            given = [p for p, good in zip(answers.probabilities, ok, strict=True) if good]
            if given:
                proba[where[ok]] = np.asarray(given, dtype=np.float64)
    columns = {name: rows.column(name) for name in claim.keep}
    columns["prediction"] = pa.array(predictions.tolist(), type=label_type)
    if proba is not None:
        for j, label in enumerate(classes):
            columns[f"proba_{label}"] = pa.array(proba[:, j], type=pa.float64(), from_pandas=True)
    columns["error"] = pa.array(errors.tolist(), type=pa.string())
    return pa.table(columns)


def _label_type(output_schema: dict[str, Any]) -> pa.DataType:
    task = output_schema.get("task")
    if task in ("clustering", "outlier"):
        return pa.int64()
    if task != "classification":
        return pa.float64()
    kinds = {type(c) for c in output_schema.get("classes") or []}
    if kinds and kinds <= {bool}:
        return pa.bool_()
    if kinds and kinds <= {int}:
        return pa.int64()
    if kinds <= {int, float}:
        return pa.float64()
    return pa.string()
