"""Inline jobs (sync predictions queued with their rows) on the worker, without Celery: the row is
inserted finished, the waiter gets the job object, and every race with the web tier's fallback
(row inserted `queued` on timeout, id queued too, cancel) ends with exactly one result."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import numpy as np
import orjson
from sqlalchemy import update
from sqlalchemy.orm import undefer

from shared import cache_epoch
from shared.db import session_scope
from shared.inline_jobs import (
    DEADLINE_GRACE_S,
    InlineJob,
    entry_id,
    new_id,
    waited_entry,
    wants_reply,
)
from shared.jobs import Job
from shared.jobs import copy as job_copy
from shared.jobs.inputs import from_npy, to_npy, to_text
from shared.models import MLModel
from shared.redis_client import get_redis
from shared.schemas.jobs import JobOut
from shared.signals import reply_key
from tests.fixtures.models import fit_classifier
from tests.workers.serving.test_pipeline import model_row  # noqa: F401  (fixture)
from workers.serving import pipeline

ROW = [5.1, 3.5, 1.4, 0.2]


def _inline(model: MLModel, rows: list[list[float]], proba: bool = False, **kw) -> InlineJob:
    now = time.time()
    fields = dict(
        id=new_id(),
        model_id=str(model.id),
        owner_id=str(model.owner_id),
        model_version=1,
        inputs=rows,
        return_probabilities=proba,
        created_at=now - 0.01,
        deadline=now + 10,
        request_id="req-1",
    )
    return InlineJob(**{**fields, **kw})


def _job(job_id: str) -> Job | None:
    with session_scope() as s:
        return s.get(Job, uuid.UUID(job_id), options=[undefer(Job.input_matrix)])


def _persist_queued(job: InlineJob) -> None:
    """What the web tier does when its wait runs out."""
    with session_scope() as s:
        s.add(
            Job(
                id=uuid.UUID(job.id),
                model_id=uuid.UUID(job.model_id),
                model_version=1,
                owner_id=uuid.UUID(job.owner_id),
                input_matrix=to_npy(np.array(job.inputs)),
                n_rows=len(job.inputs),
                return_probabilities=job.return_probabilities,
            )
        )


def test_inline_jobs_are_inserted_finished_and_answered(model_row):  # noqa: F811
    a = _inline(model_row, [ROW], proba=True)
    b = _inline(model_row, [ROW, [6.7, 3.0, 5.2, 2.3]])
    report = pipeline.run_jobs(str(model_row.id), [a.encode(), b.encode()], worker="t")
    assert (report.claimed, report.written, report.failed) == (2, 2, 0)
    expected = fit_classifier().predict(np.array(b.inputs)).tolist()
    row = _job(b.id)
    assert row.status == "succeeded" and row.result["predictions"] == expected
    assert row.owner_id == model_row.owner_id and row.request_id == "req-1"
    assert row.attempts == 1 and row.worker == "t"
    assert from_npy(row.input_matrix).tolist() == b.inputs
    assert row.queue_ms >= 0 and row.total_ms >= row.queue_ms
    answer = JobOut.model_validate_json(get_redis().blpop([reply_key("job", a.id)], 1)[1])
    assert answer.status == "succeeded" and len(answer.result.probabilities) == 1
    assert answer.timings.total_ms == _job(a.id).total_ms
    assert str(answer.id) == a.id and answer.attempts == 1


def test_result_lands_on_a_row_the_web_tier_left_queued(model_row):  # noqa: F811
    job = _inline(model_row, [ROW])
    _persist_queued(job)
    pipeline.run_jobs(str(model_row.id), [job.encode()], worker="t")
    row = _job(job.id)
    assert row.status == "succeeded" and row.attempts == 1


def test_cancelled_row_keeps_its_status(model_row):  # noqa: F811
    job = _inline(model_row, [ROW])
    _persist_queued(job)
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == uuid.UUID(job.id)).values(status="cancelled"))
    report = pipeline.run_jobs(str(model_row.id), [job.encode()], worker="t")
    assert report.written == 0
    assert _job(job.id).status == "cancelled" and _job(job.id).result is None


def test_id_and_inline_entry_of_one_job_write_one_result(model_row):  # noqa: F811
    """A 202 leaves both the inline entry and the id queued: in one batch or in two, one result."""
    together = _inline(model_row, [ROW])
    _persist_queued(together)
    report = pipeline.run_jobs(str(model_row.id), [together.encode(), together.id], worker="t")
    assert report.written == 1 and _job(together.id).status == "succeeded"

    apart = _inline(model_row, [ROW])
    _persist_queued(apart)
    first = pipeline.run_jobs(str(model_row.id), [apart.id], worker="t")
    second = pipeline.run_jobs(str(model_row.id), [apart.encode()], worker="t")
    assert (first.written, second.written) == (1, 0)
    assert _job(apart.id).attempts == 1


def test_stale_inline_entry_is_dropped(model_row):  # noqa: F811
    past = time.time() - DEADLINE_GRACE_S - 1
    job = _inline(model_row, [ROW], created_at=past - 1, deadline=past)
    report = pipeline.run_jobs(str(model_row.id), [job.encode()], worker="t")
    assert report.claimed == 0 and _job(job.id) is None


def test_bad_rows_fail_only_their_own_inline_job(model_row):  # noqa: F811
    good, bad = _inline(model_row, [ROW]), _inline(model_row, [[1.0, 2.0]])
    pipeline.run_jobs(str(model_row.id), [good.encode(), bad.encode()], worker="t")
    assert _job(good.id).status == "succeeded"
    assert _job(bad.id).error_code == "inference_error"
    answer = orjson.loads(get_redis().lpop(reply_key("job", bad.id)))
    assert answer["status"] == "failed" and answer["error"]["code"] == "inference_error"


def test_entry_id_reads_every_kind(model_row):  # noqa: F811
    job = _inline(model_row, [ROW])
    assert entry_id(job.encode()) == job.id and entry_id(job.id) == job.id
    assert entry_id(waited_entry(job.id)) == job.id
    assert wants_reply(waited_entry(job.id)) and not wants_reply(job.id)


def test_model_reference_is_cached_until_the_epoch_moves(model_row):  # noqa: F811
    """A batch without a claim reads no model row while the cache epoch stands; the API bumps
    the epoch after disabling a model, and the next batch sees it."""
    first = _inline(model_row, [ROW])
    pipeline.run_jobs(str(model_row.id), [first.encode()], worker="t")
    with session_scope() as s:
        s.execute(update(MLModel).where(MLModel.id == model_row.id).values(status="disabled"))
    unchanged = _inline(model_row, [ROW])
    pipeline.run_jobs(str(model_row.id), [unchanged.encode()], worker="t")
    assert _job(unchanged.id).status == "succeeded"  # the epoch did not move: still cached
    cache_epoch.bump(get_redis())
    after = _inline(model_row, [ROW])
    pipeline.run_jobs(str(model_row.id), [after.encode()], worker="t")
    assert _job(after.id).error_code == "model_unavailable"


def _big_rows() -> list[list[float]]:
    """Enough iris-like rows for the matrix to travel as `.npy` bytes and go in by COPY."""
    rng = np.random.default_rng(0)
    n = job_copy.COPY_MIN_BYTES // (len(ROW) * 8) + 1
    return (rng.normal(size=(n, len(ROW))) + 4).round(3).tolist()


def _big(model: MLModel, **kw) -> InlineJob:
    rows = _big_rows()
    job = _inline(model, rows, proba=True, **kw)
    return replace(job, inputs=to_text(np.array(rows)))


def test_a_big_inline_job_travels_as_bytes_and_is_copied_in(model_row):  # noqa: F811
    job = _big(model_row)
    assert isinstance(job.inputs, str)  # base64 of the .npy bytes, not JSON lists
    small = _inline(model_row, [ROW])
    report = pipeline.run_jobs(str(model_row.id), [job.encode(), small.encode()], worker="t")
    assert (report.claimed, report.written, report.failed) == (2, 2, 0)
    rows = _big_rows()
    row = _job(job.id)
    assert row.status == "succeeded" and row.attempts == 1 and row.worker == "t"
    assert from_npy(row.input_matrix).tolist() == rows and row.n_rows == len(rows)
    assert row.result["predictions"] == fit_classifier().predict(np.array(rows)).tolist()
    assert row.request_id == "req-1" and row.route == "explicit" and row.total_ms >= 0
    answer = JobOut.model_validate_json(get_redis().blpop([reply_key("job", job.id)], 1)[1])
    assert answer.status == "succeeded" and len(answer.result.probabilities) == len(rows)
    assert answer.created_at == row.created_at and answer.finished_at == row.finished_at
    assert _job(small.id).status == "succeeded"


def test_a_big_inline_job_left_queued_by_its_waiter_still_gets_one_result(model_row):  # noqa: F811
    """The COPY meets the row the web tier inserted on timeout: the conditional insert decides."""
    job = _big(model_row)
    _persist_queued(replace(job, inputs=_big_rows()))
    report = pipeline.run_jobs(str(model_row.id), [job.encode()], worker="t")
    assert report.written == 1
    row = _job(job.id)
    assert row.status == "succeeded" and row.attempts == 1
    assert from_npy(row.input_matrix).tolist() == _big_rows()
