"""The prediction pipeline of one batch: claim → model → cache → predict → write → signal."""

from __future__ import annotations

import logging
import socket
import time
import uuid
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy.exc import InterfaceError, OperationalError

from shared import cache_epoch, failures, inline_jobs
from shared.config import get_settings
from shared.db import autocommit
from shared.inline_jobs import InlineJob
from shared.jobs import inputs
from shared.jobs.render import job_json
from shared.redis_client import get_redis
from shared.signals import done_commands, reply_commands, send_commands
from shared.store import get_store
from workers.runtimes.base import ModelRuntime
from workers.runtimes.cache import model_cache
from workers.runtimes.selection import cache_entry
from workers.serving import claims, inference, inline, model_refs, recovery, results, telemetry
from workers.serving.inference import ClaimedJob, Outcome
from workers.serving.model_refs import ModelRef

log = logging.getLogger(__name__)
HOSTNAME = socket.gethostname()


@dataclass
class BatchReport:
    claimed: int
    written: int
    failed: int
    cache_hit: bool | None


@dataclass
class _Predicted:
    """One model's share of a batch, predicted and not yet written."""

    model_id: str
    claimed: int
    outcomes: list[Outcome]
    queued: list[Outcome]
    finished: list[dict[str, Any]]
    waited: set[uuid.UUID]  # queued jobs whose caller waits for the job object


def run_jobs(
    model_id: str,
    entries: list[str],
    worker: str = HOSTNAME,
    epoch: bytes | None = None,
    signals: list[tuple] | None = None,
) -> BatchReport:
    """Process queue entries of one model (job ids, and inline jobs carrying their rows); safe to
    call twice with the same entries (conditional writes). `epoch`: the cache epoch, if the
    caller read it along with the entries (it is read here otherwise). `signals`: where to put
    the done-signals and replies (Redis commands) for the caller to send, instead of sending
    them here."""
    epoch = cache_epoch.read(get_redis()) if epoch is None else epoch
    return run_groups([(model_id, entries)], epoch, signals, worker)[0]


def run_groups(
    groups: list[tuple[str, list[str]]],
    epoch: bytes,
    signals: list[tuple] | None = None,
    worker: str = HOSTNAME,
) -> list[BatchReport]:
    """Several models' entries taken together (a drain's batch when many models each have a
    few jobs): each model's jobs are predicted in one call, and all of them are written in one
    statement, so a batch of one job each from sixteen models costs one write, not sixteen."""
    settings = get_settings()
    predicted = [_predict(m, entries, worker, epoch, signals) for m, entries in groups]
    queued = [o for p in predicted for o in p.queued]
    finished = [row for p in predicted for row in p.finished]
    written, replied = write_with_retry(queued, finished, settings.result_write_retry_s)
    commands = _signals(written, replied, _waited_outcomes(predicted))
    if signals is None:
        send_commands(get_redis(), commands)
    else:
        signals += commands
    # After the waiters' signals, or (drains) just before the caller sends them.
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in written + replied:
        by_model.setdefault(str(row["model_id"]), []).append(row)
    reports = []
    for p in predicted:
        rows = by_model.get(p.model_id, [])
        telemetry.record_batch(p.model_id, len(p.outcomes), rows)
        hit = p.outcomes[0].cache_hit if p.outcomes else None
        n_failed = sum(o.status == "failed" for o in p.outcomes)
        reports.append(BatchReport(p.claimed, len(rows), n_failed, hit))
    return reports


def _predict(
    model_id: str, entries: list[str], worker: str, epoch: bytes, signals: list[tuple] | None
) -> _Predicted:
    """Claim, look up and predict one model's entries: the outcomes, and what to write."""
    settings = get_settings()
    mid = uuid.UUID(model_id)
    ids, waited, carried, bad = _split_entries(model_id, entries)
    if bad:  # set aside, never retried: a drain that raised on them would meet them again
        why = "malformed queue entry"
        recovery.set_aside(model_id, bad, failures.BAD_QUEUE_ENTRY, why, signals)
    claimed = claims.claim_jobs(mid, ids, worker) if ids else []
    ref = model_refs.cached(mid, epoch)
    if ref is None:
        with autocommit() as conn:
            ref = model_refs.load(conn, mid, epoch)
    # Past this point no connection is held: inference can be slow.
    started = time.time()
    rows_of = _inline_rows(model_id, carried, signals)
    claimed += rows_of.values()
    runnable, poisoned = _split_poisoned(claimed, settings.job_max_attempts)
    outcomes = poisoned + _infer(ref, runnable, mid)
    # No model row at all (never the case through the API: deletes are soft) means no foreign
    # key for an inline row either; its waiter times out rather than the batch failing forever.
    finished = inline.records(rows_of, carried, outcomes, started, worker) if ref else []
    queued = [o for o in outcomes if o.id not in carried]
    return _Predicted(model_id, len(claimed), outcomes, queued, finished, waited)


def run_batch(groups: list[tuple[str, list[str]]], epoch: bytes, signals: list[tuple]) -> None:
    """One leased batch of a drain (batching.drain's default): run it, leaving its signals for
    the drain to send with its next take, and log what became of it."""
    reports = run_groups(groups, epoch, signals)
    if not log.isEnabledFor(logging.DEBUG):
        return
    # DEBUG: each job has its own INFO line (workers/serving/telemetry.py); at INFO this one
    # added a line for every two or three jobs at 16 connections.
    for (model_id, entries), report in zip(groups, reports, strict=True):
        log.debug(
            "batch model=%s size=%d claimed=%d written=%d failed=%d cache_hit=%s",
            model_id,
            len(entries),
            report.claimed,
            report.written,
            report.failed,
            report.cache_hit,
        )


def _split_entries(
    model_id: str, entries: list[str]
) -> tuple[list[uuid.UUID], set[uuid.UUID], dict[uuid.UUID, InlineJob], list[str]]:
    """(job ids, those of them a caller waits for, inline jobs by id, entries that are neither:
    malformed)."""
    ids, waited, jobs, bad = [], set(), [], []
    for entry in entries:
        try:
            if inline_jobs.is_inline(entry):
                jobs.append(_inline_job(model_id, entry))
                continue
            job_id = uuid.UUID(inline_jobs.entry_id(entry))
            ids.append(job_id)
            if inline_jobs.wants_reply(entry):
                waited.add(job_id)
        except (ValueError, TypeError):
            bad.append(entry)
    fresh, stale = inline.split_stale(jobs, time.time())
    if stale:
        log.warning("dropped %d inline jobs past their waiter's deadline", len(stale))
    # A job whose waiter gave up is queued by id as well; if both meet here, the id (with its
    # row and attempt count) wins.
    known = set(ids)
    carried = {uuid.UUID(j.id): j for j in fresh}
    return ids, waited, {job_id: j for job_id, j in carried.items() if job_id not in known}, bad


def _inline_rows(
    model_id: str, carried: dict[uuid.UUID, InlineJob], signals: list[tuple] | None
) -> dict[uuid.UUID, ClaimedJob]:
    """Inline jobs with their rows as a matrix; one whose rows are not a numeric matrix is set
    aside (and dropped from `carried`)."""
    rows_of: dict[uuid.UUID, ClaimedJob] = {}
    for job_id, job in list(carried.items()):
        try:
            rows_of[job_id] = inline.claimed(job)
        except (ValueError, TypeError):
            del carried[job_id]
            recovery.set_aside(
                model_id,
                [job.encode()],
                failures.BAD_QUEUE_ENTRY,
                "inputs are not a numeric matrix",
                signals,
            )
    return rows_of


def _inline_job(model_id: str, entry: str) -> InlineJob:
    job = inline_jobs.parse(entry)
    if job.model_id != model_id:
        raise ValueError("inline job of another model")
    return job


def _waited_outcomes(predicted: list[_Predicted]) -> dict[uuid.UUID, Outcome]:
    return {o.id: o for p in predicted for o in p.queued if o.id in p.waited}


def _signals(
    written: list[dict[str, Any]], replied: list[dict[str, Any]], waited: dict[uuid.UUID, Outcome]
) -> list[tuple]:
    """The job itself for the waiters of inline jobs (but a shadow copy's: nobody waits for it,
    and its reply would only sit in Redis) and of written jobs a caller waits for (rendered from
    the row the write returned and the outcome in memory: the result is not read back);
    wake-ups for the other written jobs' waiters (long-polls)."""
    replies = {str(row["id"]): job_json(row) for row in replied if row["route"] != "shadow"}
    woken = []
    for row in written:
        outcome = waited.get(row["id"])
        if outcome is None:
            woken.append(row["id"])
            continue
        reply = {**row, "result": outcome.result, "error_message": outcome.error_message}
        replies[str(row["id"])] = job_json(reply)
    return done_commands("job", woken) + reply_commands("job", replies)


def write_with_retry(
    outcomes: list[Outcome], finished: list[dict[str, Any]], budget_s: float
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Write results (queued jobs' updates and inline jobs' rows, one statement), retrying
    with backoff while the database is unreachable: a computed result survives an outage
    shorter than RESULT_WRITE_RETRY_S. Returns the rows actually written, of each kind."""
    deadline, delay = time.monotonic() + budget_s, 0.2
    while True:
        try:
            return results.write(outcomes, finished)
        except (OperationalError, InterfaceError):  # unreachable, or the connection died
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
    why = f"worker died {max_attempts} times running this job"
    poisoned = [
        inference.failed(j, failures.WORKER_LOST, why) for j in claimed if j.attempts > max_attempts
    ]
    return runnable, poisoned


def _infer(ref: ModelRef | None, jobs: list[ClaimedJob], model_id: uuid.UUID) -> list[Outcome]:
    if not jobs:
        return []
    if ref is None or not ref.servable:
        model_cache().evict_model(str(model_id))
        reason = "model was deleted" if ref is None or ref.deleted else f"model is {ref.status}"
        return [inference.failed(j, failures.MODEL_UNAVAILABLE, reason) for j in jobs]
    outcomes: list[Outcome] = []
    for chunk in chunk_by_rows(jobs, get_settings().batch_max_rows):
        try:
            outcomes += _infer_chunk(ref, chunk)
        except SoftTimeLimitExceeded:
            limit = get_settings().task_soft_time_limit_s
            done = {o.id for o in outcomes}
            return outcomes + [
                inference.failed(j, failures.TIMEOUT, f"inference exceeded {limit}s")
                for j in jobs
                if j.id not in done
            ]
    return outcomes


def _infer_chunk(ref: ModelRef, chunk: list[ClaimedJob]) -> list[Outcome]:
    """The chunk's jobs grouped by what their runtime must be able to do: answer missing values
    as scikit-learn does (where the ONNX graph does not), or score_samples."""
    differs = bool((ref.input_schema or {}).get("onnx_differs_on_missing"))
    if not differs and not any(job.return_scores for job in chunk):
        return _infer_with(ref, chunk, missing=False)
    groups: dict[tuple[bool, bool], list[ClaimedJob]] = {}
    for job in chunk:
        needs = (differs and inputs.has_missing(job.inputs), job.return_scores)
        groups.setdefault(needs, []).append(job)
    return [
        outcome
        for (missing, scores), jobs in groups.items()
        for outcome in _infer_with(ref, jobs, missing, scores)
    ]


def _infer_with(
    ref: ModelRef, chunk: list[ClaimedJob], missing: bool, scores: bool = False
) -> list[Outcome]:
    try:
        runtime, hit = _runtime(ref, sum(len(j.inputs) for j in chunk), missing, scores)
    except SoftTimeLimitExceeded:
        raise
    except MemoryError:
        log.warning("model %s does not fit in the worker's memory limit", ref.id)
        return [inference.out_of_memory(j) for j in chunk]
    except Exception as exc:
        log.warning("model %s failed to load: %s", ref.id, exc)
        return [inference.failed(j, failures.MODEL_LOAD_FAILED, str(exc)[:500]) for j in chunk]
    return inference.predict_batch(runtime, chunk, hit)


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


def _runtime(
    ref: ModelRef, rows: int, missing: bool = False, scores: bool = False
) -> tuple[ModelRuntime, bool]:
    # scikit-learn or ONNX Runtime, as models.runtime says (and the call's size: see
    # cache_entry); each under its own artifact's hash.
    limit = get_settings().onnx_max_batch_rows
    key, size_bytes, loader = cache_entry(ref, get_store(), rows, limit, missing, scores)
    return model_cache().get_or_load(key, size_bytes, loader)
