"""The prediction pipeline of one task: claim → model → cache → predict → write → signal."""

from __future__ import annotations

import functools
import logging
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import OperationalError

from shared.config import get_settings
from shared.db import session_scope
from shared.signals import signal_done
from shared.store import get_store
from workers import inference, telemetry
from workers.cache import ModelCache
from workers.inference import ClaimedJob, ModelRef, Outcome
from workers.runtime import ModelRuntime
from workers.runtime_select import cache_entry

log = logging.getLogger(__name__)
HOSTNAME = socket.gethostname()


@functools.lru_cache(maxsize=1)
def model_cache() -> ModelCache:
    """This process's cache (with prefork, each child has its own: size it per child)."""
    settings = get_settings()
    return ModelCache(settings.model_cache_size, int(settings.model_cache_max_mb * 1024 * 1024))


@dataclass
class BatchReport:
    claimed: int
    written: int
    failed: int
    cache_hit: bool | None


def run_jobs(model_id: str, job_ids: list[str], worker: str = HOSTNAME) -> BatchReport:
    """Process jobs of one model; safe to call twice with the same ids (conditional writes)."""
    settings = get_settings()
    mid = uuid.UUID(model_id)
    ids = [uuid.UUID(j) for j in job_ids]
    with session_scope() as session:
        claimed = inference.claim_jobs(session, mid, ids, worker)
        ref = inference.load_model_ref(session, mid)
    # Past this point no connection is held: inference can be slow.
    runnable, poisoned = _split_poisoned(claimed, settings.job_max_attempts)
    outcomes = poisoned + _infer(ref, runnable, mid)
    written = write_with_retry(outcomes, settings.result_write_retry_s)
    if written:
        signal_done("job", [row["id"] for row in written])
        telemetry.record_batch(model_id, len(outcomes), written)  # after waking the waiters
    hit = outcomes[0].cache_hit if outcomes else None
    n_failed = sum(o.status == "failed" for o in outcomes)
    return BatchReport(len(claimed), len(written), n_failed, hit)


def write_with_retry(outcomes: list[Outcome], budget_s: float) -> list[dict[str, Any]]:
    """Write results, retrying with backoff while the database is unreachable: a computed result
    survives an outage shorter than RESULT_WRITE_RETRY_S."""
    deadline, delay = time.monotonic() + budget_s, 0.2
    while True:
        try:
            with session_scope() as session:
                return inference.write_outcomes(session, outcomes)
        except OperationalError:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("result write failed; retrying in %.1fs", delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def _split_poisoned(
    claimed: list[ClaimedJob], max_attempts: int
) -> tuple[list[ClaimedJob], list[Outcome]]:
    """A job delivered more than JOB_MAX_ATTEMPTS times keeps killing its worker: fail it."""
    runnable = [j for j in claimed if j.attempts <= max_attempts]
    poisoned = [
        inference.failed(j, "worker_lost", f"worker died {max_attempts} times running this job")
        for j in claimed
        if j.attempts > max_attempts
    ]
    return runnable, poisoned


def _infer(ref: ModelRef | None, jobs: list[ClaimedJob], model_id: uuid.UUID) -> list[Outcome]:
    if not jobs:
        return []
    if ref is None or not ref.servable:
        model_cache().evict_model(str(model_id))
        reason = "model was deleted" if ref is None or ref.deleted else f"model is {ref.status}"
        return [inference.failed(j, "model_unavailable", reason) for j in jobs]
    try:
        runtime, hit = _runtime(ref)
    except Exception as exc:
        log.warning("model %s failed to load: %s", ref.id, exc)
        return [inference.failed(j, "model_load_failed", str(exc)[:500]) for j in jobs]
    outcomes: list[Outcome] = []
    for chunk in chunk_by_rows(jobs, get_settings().batch_max_rows):
        try:
            outcomes += inference.predict_batch(runtime, chunk, hit)
        except SoftTimeLimitExceeded:
            limit = get_settings().task_soft_time_limit_s
            done = {o.id for o in outcomes}
            return outcomes + [
                inference.failed(j, "timeout", f"inference exceeded {limit}s", cache_hit=hit)
                for j in jobs
                if j.id not in done
            ]
    return outcomes


def chunk_by_rows(jobs: list[ClaimedJob], max_rows: int) -> list[list[ClaimedJob]]:
    """Consecutive groups of jobs with at most max_rows rows in all (a larger job goes alone)."""
    chunks: list[list[ClaimedJob]] = []
    rows = 0
    for job in jobs:
        if chunks and rows + len(job.inputs) <= max_rows:
            chunks[-1].append(job)
            rows += len(job.inputs)
        else:
            chunks.append([job])
            rows = len(job.inputs)
    return chunks


def _runtime(ref: ModelRef) -> tuple[ModelRuntime, bool]:
    # scikit-learn or ONNX Runtime, as models.runtime says; each under its own artifact's hash.
    key, size_bytes, loader = cache_entry(ref, get_store())
    return model_cache().get_or_load(key, size_bytes, loader)
