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


def test_a_users_backlog_across_models_is_bounded_and_others_are_not_held_to_it(
    user, other_user, tmp_path
):
    """MAX_QUEUED_PER_USER counts one user's waiting jobs across all their models: past it,
    async submissions and sync predicts are 429 `backlog_full` with Retry-After and leave
    nothing behind; another user still submits."""
    capped = isolated(MAX_QUEUED_PER_USER=2)
    models = [insert_ready_model(user, fit_classifier(), tmp_path, name=f"m{i}") for i in range(2)]
    other = insert_ready_model(other_user, fit_classifier(), tmp_path, name="other")
    assert submit(capped.client, user, models[0], {"inputs": ROWS}).status_code == 202
    assert submit(capped.client, user, models[1], {"inputs": ROWS}).status_code == 202
    refused = submit(capped.client, user, models[1], {"inputs": ROWS})
    assert refused.status_code == 429, refused.json
    assert refused.json["error"]["code"] == "backlog_full"
    assert refused.json["error"]["details"] == {"queued": 2, "max_queued_per_user": 2}
    assert refused.headers["Retry-After"]
    resp = capped.client.post(
        f"/api/v1/models/{models[0]}/predict?timeout=1", json={"inputs": ROWS}, headers=user.headers
    )
    assert resp.status_code == 429 and resp.json["error"]["code"] == "backlog_full"
    assert job_count() == 2
    assert submit(capped.client, other_user, other, {"inputs": ROWS}).status_code == 202
