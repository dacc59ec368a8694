"""The web side of the model queues (web/jobs/queue.py): past MAX_QUEUE_DEPTH, 429."""

from __future__ import annotations

import pytest

from tests.fixtures.models import fit_classifier, insert_ready_model
from tests.fixtures.services import isolated
from tests.web.jobs.calls import ROWS, job_count, submit

pytestmark = [pytest.mark.e2e]


def test_full_queue_refuses_sync_predict_without_a_trace(user, tmp_path):
    """Past MAX_QUEUE_DEPTH a sync predict is a 429 and leaves nothing behind."""
    full = isolated(MAX_QUEUE_DEPTH=1)
    meta = insert_ready_model(user, fit_classifier(), tmp_path)
    assert submit(full.client, user, meta, {"inputs": ROWS}).status_code == 202  # depth 1 now
    resp = full.client.post(
        f"/api/v1/models/{meta}/predict?timeout=1", json={"inputs": ROWS}, headers=user.headers
    )
    assert resp.status_code == 429 and resp.json["error"]["code"] == "queue_full"
    assert resp.headers["Retry-After"]
    assert job_count() == 1
