"""The outbox (migration 0009's triggers) and one delivery attempt, run in this process against
the real database and a loopback receiver: an event row exactly when a job, batch or model
becomes terminal in a committed transaction; the attempt checks addresses again, signs, records
retries, 410 and a 24 h failing streak."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from sqlalchemy import text
from standardwebhooks.webhooks import Webhook

from shared.config import Settings
from shared.db import session_scope
from tests.fixtures.models import fit_classifier, insert_ready_model
from tests.webhooks import receiver
from workers.webhooks import delivery, outbox

ALL_EVENTS = ["job.succeeded", "job.failed", "batch.finished", "model.ready", "model.failed"]


def endpoint(client, account, url="http://127.0.0.1:9/hook", **body) -> dict:
    payload = {"url": url, "events": ALL_EVENTS, **body}
    resp = client.post("/api/v1/webhooks", json=payload, headers=account.headers)
    assert resp.status_code == 201, resp.json
    return resp.json


def deliveries() -> list[tuple[str, str]]:
    with session_scope() as s:
        rows = s.execute(text("SELECT event, subject_id FROM webhook_deliveries ORDER BY event"))
        return [(r.event, str(r.subject_id)) for r in rows]


def insert_job(session, account, model_id: str, status: str = "queued") -> str:
    job_id = str(uuid.uuid4())
    session.execute(
        text(
            "INSERT INTO jobs (id, model_id, model_version, owner_id, status, n_rows)"
            " VALUES (:id, :model, 1, :owner, :status, 1)"
        ),
        {"id": job_id, "model": model_id, "owner": account.id, "status": status},
    )
    return job_id


def set_status(table: str, row_id: str, status: str) -> None:
    with session_scope() as s:
        s.execute(
            text(f"UPDATE {table} SET status = :s WHERE id = :id"), {"s": status, "id": row_id}
        )


def test_events_are_written_with_the_terminal_change_only(client, user, other_user, tmp_path):
    endpoint(client, user)
    model = insert_ready_model(user, fit_classifier(), tmp_path)  # inserted ready
    assert deliveries() == [("model.ready", model)]
    with session_scope() as s:
        ok, bad, expired = (insert_job(s, user, model) for _ in range(3))
        inline = insert_job(s, user, model, status="succeeded")  # a sync job, inserted finished
    set_status("jobs", ok, "running")  # not terminal: nothing
    assert len(deliveries()) == 2
    set_status("jobs", ok, "succeeded")
    set_status("jobs", bad, "failed")
    set_status("jobs", expired, "expired")
    set_status("jobs", ok, "succeeded")  # no change of status: no second event
    assert sorted(deliveries()) == sorted(
        [
            ("model.ready", model),
            ("job.succeeded", inline),
            ("job.succeeded", ok),
            ("job.failed", bad),
            ("job.failed", expired),
        ]
    )


def test_shadow_copies_send_no_events(client, user, tmp_path):
    """A shadow job's answer is never returned to its caller (docs/aliases.md): not announced
    either, inserted finished (its inline row) or finished later."""
    endpoint(client, user)
    model = insert_ready_model(user, fit_classifier(), tmp_path)
    with session_scope() as s:
        primary = insert_job(s, user, model, status="succeeded")
        shadow = insert_job(s, user, model)
        s.execute(text("UPDATE jobs SET route = 'shadow' WHERE id = :id"), {"id": shadow})
        s.execute(
            text(
                "INSERT INTO jobs (id, model_id, model_version, owner_id, status, n_rows, route,"
                " shadow_of) VALUES (:id, :model, 1, :owner, 'succeeded', 1, 'shadow', :of)"
            ),
            {"id": str(uuid.uuid4()), "model": model, "owner": user.id, "of": primary},
        )
    set_status("jobs", shadow, "succeeded")
    assert sorted(deliveries()) == sorted([("model.ready", model), ("job.succeeded", primary)])


def test_a_rolled_back_change_writes_no_event(client, user, tmp_path):
    model = insert_ready_model(user, fit_classifier(), tmp_path)
    endpoint(client, user)
    with session_scope() as s:
        job = insert_job(s, user, model)
    with pytest.raises(RuntimeError, match="fails after"):
        _finish_then_fail(job)
    assert deliveries() == []


def _finish_then_fail(job: str) -> None:
    with session_scope() as s:
        s.execute(text("UPDATE jobs SET status = 'succeeded' WHERE id = :id"), {"id": job})
        raise RuntimeError("the transaction fails after the update")


def test_only_subscribed_active_own_endpoints_get_events(client, user, other_user, tmp_path):
    mine = insert_ready_model(user, fit_classifier(), tmp_path)
    other_model = insert_ready_model(user, fit_classifier(), tmp_path, name="other")
    endpoint(client, user, events=["job.failed"])  # not job.succeeded
    endpoint(client, user, events=["job.succeeded"], model_id=other_model)  # another model
    paused = endpoint(client, user, events=["job.succeeded"])
    client.patch(
        f"/api/v1/webhooks/{paused['id']}", json={"is_active": False}, headers=user.headers
    )
    endpoint(client, other_user, events=["job.succeeded"])  # another user
    with session_scope() as s:
        job = insert_job(s, user, mine)
    set_status("jobs", job, "succeeded")
    assert deliveries() == []
    filtered = endpoint(client, user, events=["job.succeeded"], model_id=mine)
    with session_scope() as s:
        job = insert_job(s, user, mine)
    set_status("jobs", job, "succeeded")
    with session_scope() as s:
        (row,) = s.execute(text("SELECT endpoint_id, event FROM webhook_deliveries")).all()
    assert (str(row.endpoint_id), row.event) == (filtered["id"], "job.succeeded")


def test_model_and_batch_transitions(client, user, tmp_path):
    endpoint(client, user, events=["model.ready", "model.failed", "batch.finished"])
    model = insert_ready_model(user, fit_classifier(), tmp_path)
    set_status("models", model, "validating")
    set_status("models", model, "failed")
    set_status("models", model, "disabled")  # not an event
    batch = str(uuid.uuid4())
    with session_scope() as s:
        s.execute(
            text(
                "INSERT INTO batches (id, owner_id, model_id, model_version, input_key,"
                " input_format, input_size_bytes, input_sha256, output_format)"
                " VALUES (:id, :owner, :model, 1, 'k', 'csv', 1, 'x', 'csv')"
            ),
            {"id": batch, "owner": user.id, "model": model},
        )
    set_status("batches", batch, "running")
    set_status("batches", batch, "partial")
    assert sorted(deliveries()) == [
        ("batch.finished", batch),
        ("model.failed", model),
        ("model.ready", model),
    ]


def _attempt_all(settings: Settings) -> list[str]:
    return delivery.deliver_due(settings)


def _log(client, account, endpoint_id) -> list[dict]:
    return client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries", headers=account.headers).json[
        "items"
    ]


def test_attempt_renders_signs_and_sends_the_api_object(client, user, tmp_path):
    settings = Settings(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOW_PRIVATE=True)
    with receiver.running() as hook:
        created = endpoint(client, user, url=hook.url, events=["model.ready"])
        model = insert_ready_model(user, fit_classifier(), tmp_path)
        assert _attempt_all(settings) == ["delivered"]
        (got,) = hook.requests
    event = Webhook(created["secret"]).verify(got.body, got.headers)
    assert event["type"] == "model.ready"
    assert event["data"] == client.get(f"/api/v1/models/{model}", headers=user.headers).json
    (row,) = _log(client, user, created["id"])
    assert got.headers["webhook-id"] == row["id"]
    assert row["status"] == "delivered" and row["attempts"] == 1
    assert row["last_status_code"] == 204 and row["next_attempt_at"] is None


PRIVATE_URLS = [
    "http://127.0.0.1:{port}/hook",
    "https://10.0.0.1/hook",
    "https://169.254.169.254/latest/meta-data/",
]


def test_private_addresses_refused_at_delivery(client, user):
    """Saved while private addresses were allowed; refused by a worker that does not allow them
    (as when a name's DNS answer changes to a private address after the endpoint was saved)."""
    refusing = Settings(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOW_PRIVATE=False)
    with receiver.running() as hook:
        port = hook.url.split(":")[2].split("/")[0]
        created = [endpoint(client, user, url=url.format(port=port)) for url in PRIVATE_URLS]
        for one in created:
            client.post(f"/api/v1/webhooks/{one['id']}/test", headers=user.headers)
        assert _attempt_all(refusing) == ["retrying"] * len(PRIVATE_URLS)
        assert hook.requests == []
    for one in created:
        (row,) = _log(client, user, one["id"])
        assert row["status"] == "pending" and row["last_status_code"] is None
        assert row["last_error"].startswith("refused") and "non-public" in row["last_error"]


def test_retry_then_410_disables_the_endpoint(client, user):
    settings = Settings(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOW_PRIVATE=True)
    with receiver.running() as hook:
        hook.statuses = [500, 410]
        created = endpoint(client, user, url=hook.url)
        client.post(f"/api/v1/webhooks/{created['id']}/test", headers=user.headers)
        assert _attempt_all(settings) == ["retrying"]
        with session_scope() as s:  # due now instead of in 5 s
            s.execute(text("UPDATE webhook_deliveries SET next_attempt_at = now()"))
        assert _attempt_all(settings) == ["gone"]
    (row,) = _log(client, user, created["id"])
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("failed", 2, 410)
    shown = client.get(f"/api/v1/webhooks/{created['id']}", headers=user.headers).json
    assert shown["is_active"] is False and shown["disabled_reason"] == "gone"
    assert len({r.headers["webhook-id"] for r in hook.requests}) == 1


def test_failing_for_the_whole_window_disables_the_endpoint(client, user):
    settings = Settings(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOW_PRIVATE=True)
    with receiver.running() as hook:
        hook.statuses = [503, 503]
        created = endpoint(client, user, url=hook.url)
        for _ in range(2):
            client.post(f"/api/v1/webhooks/{created['id']}/test", headers=user.headers)
        with session_scope() as s:  # the endpoint has failed since a day ago
            s.execute(
                text("UPDATE webhook_endpoints SET failing_since = now() - interval '25 hours'")
            )
        outcomes = _attempt_all(settings)
    assert "failed" in outcomes
    shown = client.get(f"/api/v1/webhooks/{created['id']}", headers=user.headers).json
    assert shown["is_active"] is False and shown["disabled_reason"] == "failing"
    assert {r["status"] for r in _log(client, user, created["id"])} == {"failed"}


def test_a_stale_attempt_sends_nothing(client, user):
    settings = Settings(WEBHOOK_ALLOW_HTTP=True, WEBHOOK_ALLOW_PRIVATE=True)
    with receiver.running() as hook:
        created = endpoint(client, user, url=hook.url)
        client.post(f"/api/v1/webhooks/{created['id']}/test", headers=user.headers)
        with session_scope() as s:
            delivery_id, first = outbox.claim(s, lease_s=0.01)
        time.sleep(0.05)  # the lease runs out: claimed again as attempt 2
        with session_scope() as s:
            assert outbox.claim(s, lease_s=60) == (delivery_id, 2)
        assert delivery.attempt(delivery_id, first, settings) == "stale"
        assert hook.requests == []
        assert delivery.attempt(delivery_id, 2, settings) == "delivered"
    assert json.loads(hook.requests[0].body)["type"] == "webhook.test"


def test_claims_share_the_loops_among_endpoints_and_lease_one_row(client, user):
    """An endpoint's backlog does not starve another's event: each claim draws among the
    endpoints with due deliveries."""
    busy, quiet = endpoint(client, user), endpoint(client, user)
    for _ in range(20):
        client.post(f"/api/v1/webhooks/{busy['id']}/test", headers=user.headers)
    client.post(f"/api/v1/webhooks/{quiet['id']}/test", headers=user.headers)
    with session_scope() as s:
        (quiet_row,) = s.execute(
            text("SELECT id FROM webhook_deliveries WHERE endpoint_id = :e"), {"e": quiet["id"]}
        ).scalars()
    claimed = []
    for _ in range(20):  # the quiet one is drawn within these, but for a 2^-20 chance
        with session_scope() as s:
            claimed.append(outbox.claim(s, lease_s=60)[0])
        with session_scope() as s:
            leased = s.execute(
                text("SELECT count(*) FROM webhook_deliveries WHERE attempts > 0")
            ).scalar_one()
        assert leased == len(claimed)  # a claim leases the one row it returns
    assert quiet_row in claimed


def test_prune_drops_old_finished_deliveries_only(client, user):
    created = endpoint(client, user)
    for _ in range(3):
        client.post(f"/api/v1/webhooks/{created['id']}/test", headers=user.headers)
    with session_scope() as s:
        s.execute(
            text(
                "UPDATE webhook_deliveries SET created_at = now() - interval '40 days',"
                " status = CASE WHEN id = (SELECT min(id::text)::uuid FROM webhook_deliveries)"
                " THEN 'pending' ELSE 'delivered' END"
            )
        )
    assert delivery.prune(Settings(JOB_RETENTION_DAYS=30)) == 2
    (kept,) = _log(client, user, created["id"])
    assert kept["status"] == "pending"  # still owed: never pruned
