"""Big input matrices go in by binary COPY (shared/jobs/copy.py): the stored row is the one an
INSERT writes, and a driver error surfaces as SQLAlchemy's, as an INSERT's would."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import undefer

from shared.db import get_engine, session_scope
from shared.jobs import Job
from shared.jobs import copy as job_copy
from shared.jobs.inputs import from_npy
from shared.jobs.rows import QUEUED, queued_row
from tests.fixtures.models import fit_classifier, insert_ready_model
from tests.web.jobs.calls import job_count, submit

N_FEATURES = 4  # the iris classifier's


def _big_rows() -> list[list[float]]:
    n = job_copy.COPY_MIN_BYTES // (N_FEATURES * 8) + 1
    return np.random.default_rng(1).normal(size=(n, N_FEATURES)).round(4).tolist()


def _row(job_id: uuid.UUID) -> Job:
    with session_scope() as s:
        return s.scalars(
            select(Job).where(Job.id == job_id).options(undefer(Job.input_matrix))
        ).one()


def test_a_big_job_is_copied_in_as_an_insert_would_write_it(private_queue, user, tmp_path):
    client = private_queue.client
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    rows = _big_rows()
    resp = submit(client, user, model_id, {"inputs": rows}, **{"X-Request-ID": "big-1"})
    assert resp.status_code == 202, resp.json
    row = _row(uuid.UUID(resp.json["id"]))
    assert from_npy(row.input_matrix).tolist() == rows and row.n_rows == len(rows)
    assert (row.status, row.attempts, row.route, row.request_id) == (
        "queued",
        0,
        "explicit",
        "big-1",
    )
    assert str(row.model_id) == model_id and str(row.owner_id) == user.id
    assert row.created_at.isoformat() == resp.json["created_at"].replace("Z", "+00:00")
    assert row.idempotency_key is None and row.return_probabilities is False


def test_a_big_job_keeps_its_idempotency_key(private_queue, user, tmp_path):
    client = private_queue.client
    model_id = insert_ready_model(user, fit_classifier(), tmp_path)
    body, key = {"inputs": _big_rows()}, {"Idempotency-Key": "big-key"}
    first = submit(client, user, model_id, body, **key)
    again = submit(client, user, model_id, body, **key)
    assert again.json["id"] == first.json["id"] and job_count() == 1
    assert _row(uuid.UUID(first.json["id"])).request_hash is not None


def test_a_duplicate_row_raises_integrity_error(user, tmp_path):
    model_id = uuid.UUID(insert_ready_model(user, fit_classifier(), tmp_path))
    matrix = np.array(_big_rows())
    row = queued_row(
        model_id=model_id,
        model_version=1,
        owner_id=uuid.UUID(user.id),
        rows=matrix,
        probabilities=True,
        request_id=None,
    )
    assert job_copy.is_big(row)
    with get_engine().connect() as conn:
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        job_copy.insert(conn, QUEUED, [row])
        with pytest.raises(IntegrityError):
            job_copy.insert(conn, QUEUED, [row])
        assert conn.scalar(select(Job.return_probabilities).where(Job.id == row["id"])) is True
