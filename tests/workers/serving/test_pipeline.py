"""Worker functions on the real database, without Celery: claim, fences, batching, housekeeping."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import ProgrammingError

from shared import maintenance
from shared.db import kept_execute, session_scope
from shared.inline_jobs import waited_entry
from shared.jobs import Job
from shared.jobs import copy as job_copy
from shared.jobs.inputs import to_npy
from shared.jobs.render import job_out
from shared.models import MLModel, User
from shared.redis_client import get_redis
from shared.schemas.jobs import JobOut
from shared.signals import DONE, reply_key
from shared.store import get_store
from tests.fixtures.models import dump, fit_classifier
from workers.runtimes.cache import model_cache
from workers.runtimes.sklearn import SklearnRuntime
from workers.serving import claims, inference, pipeline, results


@pytest.fixture
def model_row(tmp_path) -> MLModel:
    from workers.validation.introspect import describe

    est = fit_classifier()
    meta = describe(est)
    mid = uuid.uuid4()
    with open(dump(est, tmp_path / "m.joblib"), "rb") as fh:
        stored = get_store().save(f"{mid}.joblib", fh)
    with session_scope() as s:
        user = User(email=f"{mid}@example.com", password_hash="x")
        s.add(user)
        s.flush()
        row = MLModel(
            id=mid,
            owner_id=user.id,
            name="m",
            version=1,
            status="ready",
            format="joblib",
            artifact_key=stored.key,
            sha256=stored.sha256,
            size_bytes=stored.size_bytes,
            input_schema=meta["input_schema"],
            output_schema=meta["output_schema"],
        )
        s.add(row)
    return row


def _jobs(
    model: MLModel, inputs: list, proba: bool = False, *, as_matrix: bool = False
) -> list[uuid.UUID]:
    """Queued job rows; their inputs as the JSONB rows of old jobs, or (`as_matrix`) in the
    binary `input_matrix` the web tier writes today."""
    ids = [uuid.uuid4() for _ in inputs]
    with session_scope() as s:
        for job_id, rows in zip(ids, inputs, strict=True):
            stored = {"input_matrix": to_npy(np.asarray(rows))} if as_matrix else {"inputs": rows}
            s.add(
                Job(
                    id=job_id,
                    model_id=model.id,
                    model_version=1,
                    owner_id=model.owner_id,
                    n_rows=len(rows),
                    return_probabilities=proba,
                    **stored,
                )
            )
    return ids


def _job(job_id: uuid.UUID) -> Job:
    with session_scope() as s:
        return s.get(Job, job_id)


def test_batch_of_jobs_is_split_back_per_job(model_row):
    inputs = [[[5.1, 3.5, 1.4, 0.2]], [[6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]]
    ids = _jobs(model_row, inputs, proba=True)
    report = pipeline.run_jobs(str(model_row.id), [str(i) for i in ids], worker="t")
    assert (report.claimed, report.written, report.failed) == (2, 2, 0)
    est = fit_classifier()
    for job_id, rows in zip(ids, inputs, strict=True):
        job = _job(job_id)
        assert job.status == "succeeded"
        assert job.result["predictions"] == est.predict(np.array(rows)).tolist()
        assert len(job.result["probabilities"]) == len(rows)
        assert job.attempts == 1 and job.worker == "t"


def test_a_waited_job_is_answered_with_the_job_as_written(model_row):
    """A queued job whose caller waits (a sync predict too big to go inline) gets the job
    object in its signal, the same as reading the row back; a job nobody waits for only wakes
    long-polls."""
    inputs = [[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], [[1.0, 2.0]], [[5.9, 3.0, 4.2, 1.5]]]
    waited, bad, plain = _jobs(model_row, inputs, proba=True)
    entries = [waited_entry(waited), waited_entry(bad), str(plain)]
    assert pipeline.run_jobs(str(model_row.id), entries, worker="t").written == 3
    for job_id in (waited, bad):
        signal = get_redis().blpop([reply_key("job", job_id)], 1)[1]
        with session_scope() as s:
            read_back = job_out(s.get(Job, job_id))
        assert JobOut.model_validate_json(signal) == read_back
    assert read_back.status == "failed" and "features" in read_back.error.message
    assert get_redis().blpop([reply_key("job", plain)], 1)[1] == DONE


def test_big_matrices_are_claimed_by_binary_copy(model_row):
    """A matrix past COPY_MIN_BYTES is left out of the claim's row and read by a binary COPY,
    a small one comes with the claim: both reach inference whole."""
    rng = np.random.default_rng(0)
    matrices = [rng.normal(size=(job_copy.COPY_MIN_BYTES // 32 + 1, 4)), rng.normal(size=(2, 4))]
    ids = _jobs(model_row, matrices, as_matrix=True)
    claimed = {job.id: job.inputs for job in claims.claim_jobs(model_row.id, ids, "t")}
    for job_id, matrix in zip(ids, matrices, strict=True):
        assert np.array_equal(claimed[job_id], matrix)
    assert pipeline.run_jobs(str(model_row.id), [str(i) for i in ids], worker="t").written == 2
    expected = fit_classifier().predict(matrices[0]).tolist()
    assert _job(ids[0]).result["predictions"] == expected


def test_one_bad_job_fails_alone(model_row):
    ids = _jobs(model_row, [[[1.0, 2.0, 3.0, 4.0]], [[1.0, 2.0]]])  # second: wrong width
    pipeline.run_jobs(str(model_row.id), [str(i) for i in ids], worker="t")
    good, bad = _job(ids[0]), _job(ids[1])
    assert good.status == "succeeded"
    assert bad.status == "failed" and bad.error_code == "inference_error"
    assert "features" in bad.error_message


def test_duplicate_delivery_writes_one_result(model_row):
    (job_id,) = _jobs(model_row, [[[1.0, 2.0, 3.0, 4.0]]])
    first = pipeline.run_jobs(str(model_row.id), [str(job_id)], worker="t")
    second = pipeline.run_jobs(str(model_row.id), [str(job_id)], worker="t")
    assert (first.written, second.claimed, second.written) == (1, 0, 0)
    assert _job(job_id).attempts == 1


def test_stale_attempt_cannot_overwrite(model_row):
    """A run that lost its claim (another delivery took the job over) has its write refused."""
    (job_id,) = _jobs(model_row, [[[1.0, 2.0, 3.0, 4.0]]])
    (old,) = claims.claim_jobs(model_row.id, [job_id], "dead")
    (new,) = claims.claim_jobs(model_row.id, [job_id], "alive")
    runtime = SklearnRuntime(fit_classifier(), None)
    assert results.write(inference.predict_batch(runtime, [old], False), []) == ([], [])
    rows, _ = results.write(inference.predict_batch(runtime, [new], False), [])
    assert [r["id"] for r in rows] == [job_id]
    assert _job(job_id).attempts == 2


def test_cancelled_job_is_skipped_and_late_result_discarded(model_row):
    a, b = _jobs(model_row, [[[1.0, 2.0, 3.0, 4.0]]] * 2)
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == a).values(status="cancelled"))
    (claimed_b,) = claims.claim_jobs(model_row.id, [a, b], "t")
    assert claimed_b.id == b
    with session_scope() as s:  # cancelled while running
        s.execute(update(Job).where(Job.id == b).values(status="cancelled"))
    runtime = SklearnRuntime(fit_classifier(), None)
    assert results.write(inference.predict_batch(runtime, [claimed_b], False), []) == ([], [])
    assert _job(b).status == "cancelled" and _job(b).result is None


def test_poison_job_fails_after_max_attempts(model_row):
    (job_id,) = _jobs(model_row, [[[1.0, 2.0, 3.0, 4.0]]])
    with session_scope() as s:
        s.execute(update(Job).where(Job.id == job_id).values(status="running", attempts=3))
    pipeline.run_jobs(str(model_row.id), [str(job_id)], worker="t")
    job = _job(job_id)
    assert job.status == "failed" and job.error_code == "worker_lost"


def test_disabled_model_fails_jobs_and_evicts(model_row):
    (job_id,) = _jobs(model_row, [[[1.0, 2.0, 3.0, 4.0]]])
    model_cache().put((str(model_row.id), model_row.sha256), object(), 1)
    with session_scope() as s:
        s.execute(update(MLModel).where(MLModel.id == model_row.id).values(status="disabled"))
    pipeline.run_jobs(str(model_row.id), [str(job_id)], worker="t")
    assert _job(job_id).error_code == "model_unavailable"
    assert (str(model_row.id), model_row.sha256) not in model_cache()


def test_expire_and_prune(model_row):
    old, fresh = _jobs(model_row, [[[1.0, 2.0, 3.0, 4.0]]] * 2)
    with session_scope() as s:
        s.execute(
            update(Job)
            .where(Job.id == old)
            .values(created_at=datetime.now(UTC) - timedelta(hours=2))
        )
        assert maintenance.expire_queued_jobs(s, ttl_s=3600) == [old]
    assert _job(old).status == "expired" and _job(fresh).status == "queued"
    with session_scope() as s:
        s.execute(
            update(Job)
            .where(Job.id == old)
            .values(finished_at=datetime.now(UTC) - timedelta(days=40))
        )
        assert maintenance.prune_history(s, retention_days=30) == 1
    with session_scope() as s:
        inputs = dict(s.execute(select(Job.id, Job.inputs).where(Job.id.in_([old, fresh]))).all())
    assert inputs[old] is None and inputs[fresh] is not None


def test_purge_removes_only_deleted_past_grace(model_row, app):
    store = get_store()
    assert store.exists(model_row.artifact_key)
    with session_scope() as s:
        assert maintenance.purge_deleted_artifacts(s, store, grace_s=0) == 0
        s.execute(
            update(MLModel)
            .where(MLModel.id == model_row.id)
            .values(deleted_at=datetime.now(UTC) - timedelta(seconds=5))
        )
    result = app.test_cli_runner().invoke(args=["purge-artifacts", "--grace-s", "0"])
    assert "removed 1" in result.output
    assert not store.exists(model_row.artifact_key)
    with session_scope() as s:
        assert s.scalar(select(MLModel.id).where(MLModel.id == model_row.id)) is not None


def _cut_connections() -> int:
    """Terminate every other session on the test database (what a database restart does)."""
    with session_scope() as s:
        return len(
            s.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            ).all()
        )


def test_kept_connection_is_replaced_after_a_restart(model_row):
    """Claims and result writes run on a connection the worker keeps (no pre-ping): when the
    database drops it, the next statement notices, reconnects and runs once more."""
    first, second = _jobs(model_row, [[[1.0, 2.0, 3.0, 4.0]]] * 2)
    (claimed,) = claims.claim_jobs(model_row.id, [first], "t")
    assert _cut_connections() >= 1
    (claimed,) = claims.claim_jobs(model_row.id, [second], "t")
    assert claimed.id == second
    assert _cut_connections() >= 1
    runtime = SklearnRuntime(fit_classifier(), None)
    rows, _ = results.write(inference.predict_batch(runtime, [claimed], False), [])
    assert [r["id"] for r in rows] == [second]
    assert _job(second).status == "succeeded"


def test_failed_statement_on_the_kept_connection_is_not_retried():
    """Only a lost connection earns the second run; any other error is raised (as SQLAlchemy
    raises it) and the next statement gets a clean connection."""
    with pytest.raises(ProgrammingError):
        kept_execute("mlsp_test_bad", "AS SELECT 1 / 0 FROM no_such_table", "EXECUTE x", ())
    assert kept_execute("mlsp_test_ok", "AS SELECT 1 AS one", "EXECUTE mlsp_test_ok", ()) == [
        {"one": 1}
    ]
