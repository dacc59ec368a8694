"""Every route that takes an id or a model reference refuses another user's with 404 — walked
from the URL map, so a route added without ownership scoping fails here."""

from __future__ import annotations

import io
import itertools
import re
import uuid

import pytest

from shared.batches import Batch
from shared.db import session_scope
from shared.jobs import Job
from shared.models import MLModel
from tests.fixtures.api import create_api_key

ROWS = {"inputs": [[1, 2, 3, 4]]}
# Valid bodies, so that each request reaches the ownership check rather than schema validation.
BODIES = {
    ("POST", "/api/v1/models/<string:ref>/jobs"): ROWS,
    ("POST", "/api/v1/models/<string:ref>/predict"): ROWS,
    ("PUT", "/api/v1/models/by-name/<name>/aliases/<alias>"): {"version": 1},
    ("PUT", "/api/v1/models/by-name/<name>/traffic"): {"routes": [{"version": 1, "weight": 100}]},
}
# Multipart routes get a valid form (a small CSV file) for the same reason.
FORMS = {("POST", "/api/v1/models/<string:ref>/batches"): b"x0,x1,x2,x3\n1,2,3,4\n"}
# Arguments that address a model by reference rather than by a UUID converter: the prediction
# routes' `ref` (an id or `name`, `name@alias`, `name@v1`), the by-name and OIP routes' `name`.
REFERENCES = {"ref", "name"}
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
        scoped = uses_ids or bool(rule.arguments & REFERENCES)
        # The web pages (web/ui/) answer a stranger's credentials with the sign-in page; their
        # scoping is tested with page sessions in tests/ui/test_pages.py.
        if not scoped or rule.rule.startswith(ADMIN_PREFIX) or rule.endpoint.startswith("ui"):
            continue
        routes += [(m, rule.rule) for m in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return routes


def _paths(rule: str, values: dict[str, list[str]]) -> list[str]:
    """The rule with every argument filled in, once per combination of the values given."""
    names = re.findall(r"<(?:[a-z]+:)?([a-z_]+)>", rule)
    missing = [n for n in names if n not in values]
    assert not missing, f"no fixture value for {missing} in {rule}: add one to this test"
    paths = []
    for combo in itertools.product(*(values[n] for n in names)):
        path = rule
        for name, value in zip(names, combo, strict=True):
            path = re.sub(rf"<(?:[a-z]+:)?{name}>", value, path)
        paths.append(path)
    return paths


def test_url_map_has_scoped_routes(app):
    routes = {rule for _, rule in _scoped_routes(app)}
    assert len(routes) >= 10
    # The routes that address a model by reference and the webhooks' are among them.
    assert {
        "/api/v1/models/<string:ref>/predict",
        "/api/v1/models/<string:ref>/jobs",
        "/api/v1/models/<string:ref>/batches",
        "/api/v1/models/by-name/<name>/aliases/<alias>",
        "/v2/models/<name>/infer",
        "/v2/models/<name>/versions/<version>/infer",
        "/api/v1/webhooks/<uuid:webhook_id>/deliveries/<uuid:delivery_id>/redeliver",
    } <= routes


def _request(client, method: str, rule: str, path: str, headers: dict[str, str]):
    if (method, rule) in FORMS:
        form = {"file": (io.BytesIO(FORMS[method, rule]), "in.csv")}
        return client.open(path, method=method, data=form, headers=headers)
    return client.open(path, method=method, json=BODIES.get((method, rule), {}), headers=headers)


def test_every_id_route_is_scoped_to_its_owner(app, client, user, other_user):
    ids = _owned_rows(user.id) | {"key_id": uuid.UUID(create_api_key(client, user)["id"])}
    ids |= _owned_webhook(client, user)
    alias = client.put(
        "/api/v1/models/by-name/mine/aliases/prod", json={"version": 1}, headers=user.headers
    )
    assert alias.status_code == 200, alias.json
    values = {name: [str(value)] for name, value in ids.items()}
    # Another user's model by its id and by every form of name reference.
    values["ref"] = [str(ids["model_id"]), "mine", "mine@v1", "mine@prod", "mine@latest"]
    values |= {"name": ["mine", "mine@prod"], "alias": ["prod"], "version": ["1"]}
    leaks = []
    for method, rule in _scoped_routes(app):
        for path in _paths(rule, values):
            resp = _request(client, method, rule, path, other_user.headers)
            if resp.status_code != 404:
                leaks.append((method, path, resp.status_code))
    assert leaks == []
    # ...and the owner still reaches them (the 404s above are about ownership, not the ids).
    assert client.get(f"/api/v1/jobs/{ids['job_id']}", headers=user.headers).status_code == 200
    for ref in ("mine", "mine@v1", "mine@prod", str(ids["model_id"])):
        resp = client.post(f"/api/v1/models/{ref}/jobs", json=ROWS, headers=user.headers)
        assert resp.status_code == 202, (ref, resp.json)
    assert client.get("/v2/models/mine@prod", headers=user.headers).status_code == 200


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
