"""Rate limits (web/limits.py): a limit trips with 429 + Retry-After, an app with limits off is
never counted even beside one with them on, and the headers: X-RateLimit-* on every limited
answer, Retry-After only on a refusal (a client honouring Retry-After on the 202 of an accepted
job would wait out the whole window)."""

from __future__ import annotations

import time

from shared.config import Settings
from tests.fixtures.api import register_and_login
from tests.fixtures.models import fit_classifier, insert_ready_model, iris
from tests.fixtures.services import isolated
from web import create_app

ROWS = iris()[0][:2].tolist()


def test_retry_after_only_when_refused(tmp_path):
    client = isolated(RATE_LIMIT_ENABLED="true", RATE_LIMIT_PREDICT="3/minute").client
    account = register_and_login(client)
    model_id = insert_ready_model(account, fit_classifier(), tmp_path)
    answers = [
        client.post(
            f"/api/v1/models/{model_id}/jobs", json={"inputs": ROWS}, headers=account.headers
        )
        for _ in range(4)
    ]
    assert [r.status_code for r in answers] == [202, 202, 202, 429]
    for accepted in answers[:3]:
        assert "Retry-After" not in accepted.headers
        assert accepted.headers["X-RateLimit-Limit"] == "3"
    assert int(answers[3].headers["Retry-After"]) >= 1
    polled = client.get(f"/api/v1/jobs/{answers[0].json['id']}", headers=account.headers)
    assert polled.status_code in (200, 202) and "Retry-After" not in polled.headers


def test_login_rate_limit_trips_with_retry_after():
    limited = create_app(
        Settings(RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH="3/minute")
    ).test_client()
    body = {"email": "who@example.com", "password": "wrong-password"}
    codes = [limited.post("/api/v1/auth/login", json=body).status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    resp = limited.post("/api/v1/auth/login", json=body)
    assert resp.status_code == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["X-RateLimit-Limit"] == "3"
    assert resp.json["error"]["code"] == "rate_limited"


def test_limits_off_in_one_app_while_on_in_another():
    """The limiter object is shared by every app in a process: an app with RATE_LIMIT_ENABLED
    off neither counts nor answers 429 (no X-RateLimit headers: the limiter never ran), while
    an app with them on in the same process still trips."""
    limited = create_app(
        Settings(RATE_LIMIT_ENABLED=True, RATE_LIMIT_AUTH="2/minute")
    ).test_client()
    free = create_app(Settings(RATE_LIMIT_ENABLED=False, RATE_LIMIT_AUTH="2/minute")).test_client()
    body = {"email": "both@example.com", "password": "wrong-password"}
    answers = [app.post("/api/v1/auth/login", json=body) for app in (free, limited) * 3]
    codes = [r.status_code for r in answers]
    assert codes == [401, 401, 401, 401, 401, 429]
    assert not any("X-RateLimit-Limit" in r.headers for r in answers[0::2])
    assert all(r.headers["X-RateLimit-Limit"] == "2" for r in answers[1::2])


def test_sync_predicts_and_oip_infers_share_the_quota_counted_in_the_push(tmp_path):
    """The prediction quota is counted by the script that queues the job (shared/quotas.py):
    a sync predict (here not waited on, timeout=0) and an OIP infer draw on the same per-user
    quota; past it, 429 + Retry-After and nothing queued; the headers report what is left."""
    client = isolated(RATE_LIMIT_ENABLED="true", RATE_LIMIT_PREDICT="2/minute").client
    account = register_and_login(client)
    model_id = insert_ready_model(account, fit_classifier(), tmp_path, name="quota")
    url = f"/api/v1/models/{model_id}/predict?timeout=0"
    answers = [client.post(url, json={"inputs": ROWS}, headers=account.headers) for _ in range(3)]
    assert [r.status_code for r in answers] == [202, 202, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["1", "0", "0"]
    assert all(r.headers["X-RateLimit-Limit"] == "2" for r in answers)
    refused = answers[2]
    assert refused.json["error"]["code"] == "rate_limited"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert int(refused.headers["X-RateLimit-Reset"]) >= int(time.time())
    assert "Retry-After" not in answers[0].headers
    history = client.get(f"/api/v1/jobs?model_id={model_id}", headers=account.headers)
    assert history.json["total"] == 2  # the refused request made no job
    body = {
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 4],
                "datatype": "FP64",
                "data": [v for row in ROWS for v in row],
            }
        ]
    }
    infer = client.post("/v2/models/quota/infer", json=body, headers=account.headers)
    assert infer.status_code == 429 and infer.headers["X-RateLimit-Remaining"] == "0"
    # Another user's quota is untouched.
    other = register_and_login(client)
    other_id = insert_ready_model(other, fit_classifier(), tmp_path, name="quota")
    resp = client.post(
        f"/api/v1/models/{other_id}/predict?timeout=0", json={"inputs": ROWS}, headers=other.headers
    )
    assert resp.status_code == 202 and resp.headers["X-RateLimit-Remaining"] == "1"
