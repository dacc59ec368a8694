"""Every route that takes an id refuses another user's ids with 404 — walked from the URL map,
so a route added without ownership scoping fails here."""

from __future__ import annotations

import io
import uuid

import pytest

from shared.batches import Batch
from shared.db import session_scope
from shared.jobs import Job
from shared.models import MLModel
from tests.fixtures.api import create_api_key

# Valid bodies, so that each request reaches the ownership check rather than schema validation.
BODIES = {
    ("POST", "/api/v1/models/<uuid:model_id>/jobs"): {"inputs": [[1, 2, 3, 4]]},
    ("POST", "/api/v1/models/<uuid:model_id>/predict"): {"inputs": [[1, 2, 3, 4]]},
}
# Multipart routes get a valid form (a small CSV file) for the same reason.
FORMS = {("POST", "/api/v1/models/<uuid:model_id>/batches"): b"x0,x1,x2,x3\n1,2,3,4\n"}
ADMIN_PREFIX = "/api/v1/admin/"  # admin routes are global by design (403 for non-admins)


def _owned_rows(user_id: str) -> dict[str, uuid.UUID]:
    owner = uuid.UUID(user_id)
    model_id, job_id, batch_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with session_scope() as s:
        s.add(
            MLModel(
                id=model_id,
                owner_id=owner,
                name="mine",
                version=1,
                status="ready",
                format="joblib",
                artifact_key=f"{model_id}.joblib",
                sha256="0" * 64,
                size_bytes=1,
                input_schema={"n_features": 4, "feature_names": None},
                output_schema={"task": "classification", "classes": [0, 1], "has_proba": True},
            )
        )
        s.flush()
        s.add(
            Job(
                id=job_id,
                model_id=model_id,
                model_version=1,
                owner_id=owner,
                inputs=[[1, 2, 3, 4]],
                n_rows=1,
                status="queued",
            )
        )
        s.add(
            Batch(
                id=batch_id,
                owner_id=owner,
                model_id=model_id,
                model_version=1,
                status="succeeded",
                input_key=f"{batch_id}.input.csv",
                input_format="csv",
                input_size_bytes=1,
                input_sha256="0" * 64,
                output_format="csv",
                output_key=f"{batch_id}.result.csv",
            )
        )
    return {"model_id": model_id, "job_id": job_id, "batch_id": batch_id}


def _owned_webhook(client, user) -> dict[str, uuid.UUID]:
    """A webhook endpoint and one delivery of it (a test event; no worker sends it here)."""
    body = {"url": "http://127.0.0.1:9/hook", "events": ["job.failed"]}
    webhook_id = client.post("/api/v1/webhooks", json=body, headers=user.headers).json["id"]
    sent = client.post(f"/api/v1/webhooks/{webhook_id}/test", headers=user.headers).json
    return {"webhook_id": uuid.UUID(webhook_id), "delivery_id": uuid.UUID(sent["delivery_id"])}


def _scoped_routes(app) -> list[tuple[str, str]]:
    routes = []
    for rule in app.url_map.iter_rules():
        uses_ids = any(
            conv.__class__.__name__ == "UUIDConverter" for conv in rule._converters.values()
        )
        # The web pages (web/ui/) answer a stranger's credentials with the sign-in page; their
        # scoping is tested with page sessions in tests/ui/test_pages.py.
        if not uses_ids or rule.rule.startswith(ADMIN_PREFIX) or rule.endpoint.startswith("ui"):
            continue
        routes += [(m, rule.rule) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return routes


def test_url_map_has_scoped_routes(app):
    assert len(_scoped_routes(app)) >= 10


def test_every_id_route_is_scoped_to_its_owner(app, client, user, other_user):
    ids = _owned_rows(user.id) | {"key_id": uuid.UUID(create_api_key(client, user)["id"])}
    ids |= _owned_webhook(client, user)
    leaks = []
    for method, rule in _scoped_routes(app):
        path = rule
        for name, value in ids.items():
            path = path.replace(f"<uuid:{name}>", str(value))
        assert "<" not in path, f"no fixture id for {rule}: add one to this test"
        if (method, rule) in FORMS:
            form = {"file": (io.BytesIO(FORMS[method, rule]), "in.csv")}
            resp = client.open(path, method=method, data=form, headers=other_user.headers)
        else:
            body = BODIES.get((method, rule), {})
            resp = client.open(path, method=method, json=body, headers=other_user.headers)
        if resp.status_code != 404:
            leaks.append((method, rule, resp.status_code))
    assert leaks == []
    # ...and the owner still reaches them (the 404s above are about ownership, not the ids).
    assert client.get(f"/api/v1/jobs/{ids['job_id']}", headers=user.headers).status_code == 200


@pytest.mark.parametrize(
    "path",
    ["/api/v1/models", "/api/v1/jobs", "/api/v1/api-keys", "/api/v1/batches", "/api/v1/webhooks"],
)
def test_lists_show_only_own_rows(client, user, other_user, path):
    _owned_rows(user.id)
    create_api_key(client, user)
    _owned_webhook(client, user)
    assert client.get(path, headers=other_user.headers).json["items"] == []
    assert client.get(path, headers=user.headers).json["items"] != []
