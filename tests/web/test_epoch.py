"""The cache epoch on the prediction routes (web/epoch.py): cached keys and models are trusted
under the epoch a process saw last, yet a change made through another process takes effect on
the very next call, and a moved epoch costs a retry, never a duplicate."""

from __future__ import annotations

import pytest

from shared import cache_epoch
from shared.redis_client import get_redis
from tests.fixtures.api import create_api_key
from tests.fixtures.models import fit_classifier, upload_ready
from tests.web.jobs.calls import ROWS, job_count, poll, submit
from web import create_app

pytestmark = [pytest.mark.e2e]


@pytest.mark.usefixtures("worker")
class TestWithWorker:
    def test_disabled_model_is_refused_at_once_by_every_process(self, client, user, tmp_path):
        """Servable models are cached per process; disabling one elsewhere still takes effect
        on the very next prediction (the shared epoch invalidates the cache)."""
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        url = f"/api/v1/models/{meta['id']}/predict"
        assert client.post(url, json={"inputs": ROWS}, headers=user.headers).status_code == 200
        other = create_app().test_client()
        off = other.patch(
            f"/api/v1/models/{meta['id']}", json={"status": "disabled"}, headers=user.headers
        )
        assert off.status_code == 200
        assert client.post(url, json={"inputs": ROWS}, headers=user.headers).status_code == 409

    def test_prediction_routes_see_a_revoked_key_and_a_disabled_model_at_once(
        self, client, user, tmp_path
    ):
        """The prediction routes trust cached keys and models under the epoch their process saw
        last and have it checked when they act (push, capacity read): a change made through
        another process still takes effect on the very next call, before anything is queued or
        written, and a call refused before its check is decided again if the epoch moved."""
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        other = create_app().test_client()  # another process: it bumps the epoch, not `client`
        predict = f"/api/v1/models/{meta['id']}/predict"
        jobs = f"/api/v1/models/{meta['id']}/jobs"

        def cached_then_revoked() -> dict:
            """A key this process resolved (under the epoch it saw last), then revoked by the
            other process, which moves the epoch without this one knowing."""
            created = create_api_key(client, user)
            headers = {"X-API-Key": created["key"]}
            assert client.post(predict, json={"inputs": ROWS}, headers=headers).status_code == 200
            resp = other.patch(
                f"/api/v1/api-keys/{created['id']}", json={"is_active": False}, headers=user.headers
            )
            assert resp.status_code == 200
            return headers

        body, bad_rows = {"inputs": ROWS}, {"inputs": [[1.0]]}
        assert client.post(predict, json=body, headers=cached_then_revoked()).status_code == 401
        assert client.post(jobs, json=body, headers=cached_then_revoked()).status_code == 401
        # Refused (422) before any check, unless decided again under the moved epoch.
        assert client.post(predict, json=bad_rows, headers=cached_then_revoked()).status_code == 401
        assert client.post(predict, json=body, headers=user.headers).status_code == 200
        off = other.patch(
            f"/api/v1/models/{meta['id']}", json={"status": "disabled"}, headers=user.headers
        )
        assert off.status_code == 200
        assert client.post(predict, json={"inputs": ROWS}, headers=user.headers).status_code == 409
        assert client.post(jobs, json={"inputs": ROWS}, headers=user.headers).status_code == 409
        assert job_count() == 4

    def test_a_moved_epoch_costs_a_retry_not_a_duplicate(self, client, user, tmp_path):
        """The epoch moves for a change that does not concern this call: the push finds it
        stale, nothing was queued, and the call is decided again and answered once."""
        meta = upload_ready(client, user, fit_classifier(), tmp_path)
        predict = f"/api/v1/models/{meta['id']}/predict"
        first = client.post(predict, json={"inputs": ROWS}, headers=user.headers)
        cache_epoch.bump(get_redis())
        again = client.post(predict, json={"inputs": ROWS}, headers=user.headers)
        assert first.status_code == again.status_code == 200
        assert again.json["result"] == first.json["result"]
        cache_epoch.bump(get_redis())
        submitted = submit(client, user, meta["id"], {"inputs": ROWS})
        assert submitted.status_code == 202
        assert poll(client, user, submitted.json["id"]).json["status"] == "succeeded"
        assert job_count() == 3
