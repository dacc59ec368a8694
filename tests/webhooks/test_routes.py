"""The webhooks routes with no worker running: endpoints (secret shown once, encrypted at rest),
URL checks at creation, another user's endpoints are 404 everywhere, the delivery log, test
events and redelivery as pending rows."""

from __future__ import annotations

import uuid

from sqlalchemy import text

from shared.db import session_scope
from shared.webhooks import WebhookDelivery
from tests.fixtures.services import isolated

URL = "http://127.0.0.1:9/hook"  # nothing is sent: no worker runs in these tests
ALL_EVENTS = ["job.succeeded", "job.failed", "batch.finished", "model.ready", "model.failed"]


def create(client, account, **body):
    payload = {"url": URL, "events": ["job.succeeded"], **body}
    return client.post("/api/v1/webhooks", json=payload, headers=account.headers)


def test_create_shows_the_secret_once_and_stores_it_encrypted(client, user):
    resp = create(client, user, events=ALL_EVENTS)
    assert resp.status_code == 201, resp.json
    body = resp.json
    assert body["secret"].startswith("whsec_")
    assert body["events"] == ALL_EVENTS and body["is_active"] is True
    assert body["model_id"] is None and resp.headers["Location"].endswith(body["id"])
    shown = client.get(f"/api/v1/webhooks/{body['id']}", headers=user.headers).json
    assert "secret" not in shown and shown["url"] == URL
    listed = client.get("/api/v1/webhooks", headers=user.headers).json
    assert [e["id"] for e in listed["items"]] == [body["id"]] and listed["total"] == 1
    assert all("secret" not in e for e in listed["items"])
    with session_scope() as s:
        stored = s.execute(text("SELECT secret_ciphertext FROM webhook_endpoints")).scalar_one()
    assert body["secret"] not in stored and body["secret"].removeprefix("whsec_") not in stored


INVALID_BODIES = [
    ({"events": []}, "events"),
    ({"events": ["job.started"]}, "events"),
    ({"url": "not a url"}, "url"),
    ({"url": "ftp://127.0.0.1/x"}, "url"),
    ({"extra": 1}, "extra"),
]
REFUSED_URLS = [
    "https://127.0.0.1/hook",
    "https://10.1.2.3/hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://localhost:8443/hook",
    "http://93.184.216.34/hook",  # public, but plain http
]


def test_invalid_bodies_are_422(client, user):
    for body, field in INVALID_BODIES:
        resp = create(client, user, **body)
        assert resp.status_code == 422, (body, resp.json)
        assert field in str(resp.json)


def test_private_addresses_and_http_refused_at_creation(user):
    app = isolated(WEBHOOK_ALLOW_HTTP="false", WEBHOOK_ALLOW_PRIVATE="false")
    for url in REFUSED_URLS:
        resp = create(app.client, user, url=url)
        assert resp.status_code == 422, (url, resp.json)
        assert resp.json["error"]["code"] == "invalid_webhook_url"
    assert app.client.get("/api/v1/webhooks", headers=user.headers).json["total"] == 0


def test_patch_url_is_checked_too(client, user):
    endpoint = create(client, user).json
    app = isolated(WEBHOOK_ALLOW_HTTP="false", WEBHOOK_ALLOW_PRIVATE="false")
    resp = app.client.patch(
        f"/api/v1/webhooks/{endpoint['id']}",
        json={"url": "https://10.0.0.1/x"},
        headers=user.headers,
    )
    assert resp.status_code == 422 and resp.json["error"]["code"] == "invalid_webhook_url"


def test_another_users_endpoints_are_404_everywhere(client, user, other_user):
    endpoint = create(client, user).json
    delivery = client.post(f"/api/v1/webhooks/{endpoint['id']}/test", headers=user.headers)
    assert delivery.status_code == 202
    base = f"/api/v1/webhooks/{endpoint['id']}"
    delivery_id = delivery.json["delivery_id"]
    h = other_user.headers
    for resp in (
        client.get(base, headers=h),
        client.patch(base, json={"is_active": False}, headers=h),
        client.get(f"{base}/deliveries", headers=h),
        client.post(f"{base}/test", headers=h),
        client.post(f"{base}/deliveries/{delivery_id}/redeliver", headers=h),
        client.delete(base, headers=h),
    ):
        assert resp.status_code == 404, resp.json
        assert resp.json["error"]["code"] == "not_found"
    assert client.get("/api/v1/webhooks", headers=h).json["items"] == []
    # Untouched: still active, one delivery, the owner still sees it.
    assert client.get(base, headers=user.headers).json["is_active"] is True
    log = client.get(f"{base}/deliveries", headers=user.headers).json
    assert [d["id"] for d in log["items"]] == [delivery_id]


def test_model_filter_must_be_an_own_model(client, user, other_user, tmp_path):
    from tests.fixtures.models import fit_classifier, insert_ready_model

    theirs = insert_ready_model(other_user, fit_classifier(), tmp_path)
    assert create(client, user, model_id=theirs).status_code == 404
    mine = insert_ready_model(user, fit_classifier(), tmp_path)
    assert create(client, user, model_id=mine).json["model_id"] == mine


def test_patch_pause_resume_and_delete(client, user):
    endpoint = create(client, user).json
    base = f"/api/v1/webhooks/{endpoint['id']}"
    client.post(f"{base}/test", headers=user.headers)
    paused = client.patch(
        base, json={"is_active": False, "events": ["job.failed"]}, headers=user.headers
    )
    assert paused.status_code == 200, paused.json
    assert paused.json["is_active"] is False and paused.json["events"] == ["job.failed"]
    (pending,) = client.get(f"{base}/deliveries", headers=user.headers).json["items"]
    assert pending["status"] == "failed"  # pausing fails what was pending
    resumed = client.patch(base, json={"is_active": True}, headers=user.headers).json
    assert resumed["is_active"] is True and resumed["disabled_reason"] is None
    assert client.delete(base, headers=user.headers).status_code == 204
    assert client.get(base, headers=user.headers).status_code == 404
    with session_scope() as s:
        assert s.query(WebhookDelivery).count() == 0


def test_test_event_and_redelivery_are_pending_rows(client, user):
    endpoint = create(client, user).json
    base = f"/api/v1/webhooks/{endpoint['id']}"
    sent = client.post(f"{base}/test", headers=user.headers)
    assert sent.status_code == 202 and sent.json["status"] == "pending"
    (row,) = client.get(f"{base}/deliveries", headers=user.headers).json["items"]
    assert row["event"] == "webhook.test" and row["status"] == "pending"
    assert row["attempts"] == 0 and row["last_status_code"] is None
    with session_scope() as s:
        s.execute(text("UPDATE webhook_deliveries SET status = 'failed', next_attempt_at = NULL"))
    again = client.post(f"{base}/deliveries/{row['id']}/redeliver", headers=user.headers)
    assert again.status_code == 202 and again.json["delivery_id"] == row["id"]
    (row,) = client.get(f"{base}/deliveries", headers=user.headers).json["items"]
    assert row["status"] == "pending" and row["next_attempt_at"] is not None
    missing = client.post(f"{base}/deliveries/{uuid.uuid4()}/redeliver", headers=user.headers)
    assert missing.status_code == 404


def test_deliveries_paginate(client, user):
    endpoint = create(client, user).json
    base = f"/api/v1/webhooks/{endpoint['id']}"
    for _ in range(3):
        client.post(f"{base}/test", headers=user.headers)
    page = client.get(f"{base}/deliveries?page=2&per_page=2", headers=user.headers).json
    assert page["total"] == 3 and page["page"] == 2 and len(page["items"]) == 1
    assert client.get(f"{base}/deliveries?per_page=500", headers=user.headers).status_code == 422


def test_endpoint_count_is_capped(user):
    app = isolated(MAX_WEBHOOKS_PER_USER=2)
    assert create(app.client, user).status_code == 201
    assert create(app.client, user).status_code == 201
    third = create(app.client, user)
    assert third.status_code == 429 and third.json["error"]["code"] == "too_many_webhooks"


def test_unauthenticated_is_401(client):
    assert client.get("/api/v1/webhooks").status_code == 401
    assert (
        client.post("/api/v1/webhooks", json={"url": URL, "events": ["job.failed"]}).status_code
        == 401
    )
