"""The aliases and traffic endpoints (web/aliases/routes.py) and the guards around them: moves
answer the previous version, only ready versions can be pointed to, a version in use cannot be
disabled or deleted, and another user's names do not exist. No worker needed."""

from __future__ import annotations

import io
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.db import session_scope
from shared.jobs import Job
from tests.fixtures.models import fit_classifier, fit_regressor
from tests.web.aliases.helpers import by_name, insert_version, predict, set_alias, set_traffic
from tests.web.jobs.calls import ROWS


@pytest.fixture
def churn(user, tmp_path) -> dict[int, str]:
    """Versions 1 and 2 (ready) and 3 (disabled) of `churn`."""
    model = fit_classifier()
    return {
        v: insert_version(user, model, tmp_path, "churn", v, "disabled" if v == 3 else "ready")
        for v in (1, 2, 3)
    }


def test_alias_set_move_delete_and_history(client, user, churn):
    first = set_alias(client, user, "churn", "production", 1)
    assert first.status_code == 200, first.json
    assert first.json == {"alias": "production", "version": 1, "previous_version": None}
    moved = set_alias(client, user, "churn", "production", 2)
    assert moved.json == {"alias": "production", "version": 2, "previous_version": 1}
    back = set_alias(client, user, "churn", "production", moved.json["previous_version"])
    assert back.json["version"] == 1 and back.json["previous_version"] == 2

    described = client.get(by_name("churn"), headers=user.headers).json
    assert described["aliases"] == {"production": 1}
    assert [m["version"] for m in described["versions"]] == [3, 2, 1]
    assert described["versions"][2]["aliases"] == ["production"]
    one = client.get(f"/api/v1/models/{churn[1]}", headers=user.headers).json
    assert one["aliases"] == ["production"]
    patched = client.patch(
        f"/api/v1/models/{churn[1]}", json={"description": "v1"}, headers=user.headers
    )
    assert patched.json["aliases"] == ["production"]
    listed = client.get("/api/v1/models?name=churn", headers=user.headers).json["items"]
    assert {m["version"]: m["aliases"] for m in listed} == {1: ["production"], 2: [], 3: []}

    assert (
        client.delete(f"{by_name('churn')}/aliases/production", headers=user.headers).status_code
        == 204
    )
    assert (
        client.delete(f"{by_name('churn')}/aliases/production", headers=user.headers).status_code
        == 404
    )
    events = client.get(f"{by_name('churn')}/history", headers=user.headers).json["items"]
    moves = [(e["from_version"], e["to_version"]) for e in reversed(events)]
    assert moves == [(None, 1), (1, 2), (2, 1), (1, None)]
    assert {e["actor_id"] for e in events} == {user.id}


@pytest.mark.parametrize("alias", ["latest", "v2", "Prod", "9lives", "x" * 33])
def test_reserved_and_malformed_alias_names_are_422(client, user, churn, alias):
    resp = set_alias(client, user, "churn", alias, 1)
    assert resp.status_code == 422 and resp.json["error"]["code"] == "invalid_alias"


def test_alias_only_to_an_existing_ready_version(client, user, churn):
    disabled = set_alias(client, user, "churn", "staging", 3)
    assert disabled.status_code == 409 and disabled.json["error"]["code"] == "model_not_ready"
    assert set_alias(client, user, "churn", "staging", 7).status_code == 404
    assert set_traffic(client, user, "churn", {1: 50, 3: 50}).status_code == 409


def test_versions_in_use_cannot_be_disabled_or_deleted(client, user, churn):
    set_alias(client, user, "churn", "production", 1)
    assert set_traffic(client, user, "churn", {2: 100}).status_code == 200
    for model_id in (churn[1], churn[2]):
        url = f"/api/v1/models/{model_id}"
        disable = client.patch(url, json={"status": "disabled"}, headers=user.headers)
        assert disable.status_code == 409 and disable.json["error"]["code"] == "version_in_use"
        assert client.delete(url, headers=user.headers).status_code == 409
    assert client.get(f"/api/v1/models/{churn[1]}", headers=user.headers).json["status"] == "ready"
    # Once nothing points to them they can go.
    assert client.delete(f"{by_name('churn')}/traffic", headers=user.headers).status_code == 204
    assert (
        client.delete(f"{by_name('churn')}/aliases/production", headers=user.headers).status_code
        == 204
    )
    url = f"/api/v1/models/{churn[2]}"
    assert client.patch(url, json={"status": "disabled"}, headers=user.headers).status_code == 200
    assert client.delete(f"/api/v1/models/{churn[1]}", headers=user.headers).status_code == 204


@pytest.mark.parametrize(
    "body",
    [
        {"routes": [{"version": 1, "weight": 90}, {"version": 2, "weight": 20}]},
        {"routes": [{"version": 1, "weight": 50}, {"version": 1, "weight": 50}]},
        {"routes": [{"version": 1, "weight": 100}], "shadow": {"version": 1, "percent": 10}},
        {"routes": [{"version": 1, "weight": 100}], "shadow": {"version": 2, "percent": 0}},
        {"routes": [{"version": 1, "weight": 100.5}]},
        {"routes": []},
    ],
)
def test_invalid_traffic_is_422(client, user, churn, body):
    resp = client.put(f"{by_name('churn')}/traffic", json=body, headers=user.headers)
    assert resp.status_code == 422, resp.json


def test_traffic_is_described_and_audited(client, user, churn):
    resp = set_traffic(client, user, "churn", {1: 90, 2: 10})
    assert resp.status_code == 200, resp.json
    described = client.get(by_name("churn"), headers=user.headers).json
    assert described["traffic"] == {
        "routes": [{"version": 1, "weight": 90}, {"version": 2, "weight": 10}],
        "shadow": None,
    }
    events = client.get(f"{by_name('churn')}/history", headers=user.headers).json["items"]
    assert events[0]["kind"] == "traffic" and events[0]["traffic"]["routes"][1]["weight"] == 10


def test_another_users_names_are_404(client, user, other_user, churn, tmp_path):
    set_alias(client, user, "churn", "production", 1)
    assert client.get(by_name("churn"), headers=other_user.headers).status_code == 404
    assert set_alias(client, other_user, "churn", "production", 1).status_code == 404
    assert set_traffic(client, other_user, "churn", {1: 100}).status_code == 404
    assert (
        client.get(f"{by_name('churn')}/analytics", headers=other_user.headers).status_code == 404
    )
    for ref in ("churn", "churn@production", "churn@v1", "churn@latest"):
        assert predict(client, other_user, ref, ROWS).status_code == 404, ref
    # The routes that take a name take ids too, still scoped to their owner.
    for action in ("predict", "jobs"):
        url = f"/api/v1/models/{churn[1]}/{action}"
        resp = client.post(url, json={"inputs": ROWS}, headers=other_user.headers)
        assert resp.status_code == 404, action
    batch = client.post(
        f"/api/v1/models/{churn[1]}/batches",
        data={"file": (io.BytesIO(b"x0,x1,x2,x3\n1,2,3,4\n"), "in.csv")},
        headers=other_user.headers,
        content_type="multipart/form-data",
    )
    assert batch.status_code == 404
    # Their own `churn` is theirs alone.
    insert_version(other_user, fit_regressor(), tmp_path, "churn", 1)
    assert client.get(by_name("churn"), headers=other_user.headers).json["aliases"] == {}


def test_unknown_references_are_404(client, user, churn):
    for ref in ("churn@staging", "churn@v9", "nothing", "nothing@production", "bad%20name"):
        resp = predict(client, user, ref, ROWS)
        assert resp.status_code == 404 and resp.json["error"]["code"] == "not_found", ref
    disabled = predict(client, user, "churn@v3", ROWS)
    assert disabled.status_code == 409 and disabled.json["error"]["code"] == "model_not_ready"


def test_batches_take_name_references(client, user, churn):
    set_alias(client, user, "churn", "production", 1)
    csv = "x0,x1,x2,x3\n" + "\n".join(",".join(str(v) for v in row) for row in ROWS)
    for ref, version in (("churn@production", 1), ("churn@v2", 2), ("churn", 1)):
        resp = client.post(
            f"/api/v1/models/{ref}/batches",
            data={"file": (io.BytesIO(csv.encode()), "rows.csv")},
            headers=user.headers,
            content_type="multipart/form-data",
        )
        assert resp.status_code == 202, resp.json
        assert resp.json["model_version"] == version, ref
    missing = client.post(
        "/api/v1/models/churn@staging/batches",
        data={"file": (io.BytesIO(csv.encode()), "rows.csv")},
        headers=user.headers,
        content_type="multipart/form-data",
    )
    assert missing.status_code == 404


def test_shadow_agreement_and_mean_abs_diff_of_regressors(client, user, tmp_path):
    """Analytics by name pair each shadow job with its primary, row by row (jobs written as a
    worker writes them, so no worker is needed)."""
    v1 = uuid.UUID(insert_version(user, fit_regressor(), tmp_path, "price", 1))
    v2 = uuid.UUID(insert_version(user, fit_regressor(), tmp_path, "price", 2))
    pairs = [([1.0, 2.0, 3.0], [1.0, 2.5, 2.0]), ([4.0], [4.0])]
    with session_scope() as s:
        for primary, shadow in pairs:
            first = _finished_job(s, user, v1, 1, primary, "traffic")
            _finished_job(s, user, v2, 2, shadow, "shadow", shadow_of=first)
    report = client.get(f"{by_name('price')}/analytics?days=1", headers=user.headers).json
    assert report["versions"]["1"]["total"] == 2 and report["versions"]["2"]["total"] == 2
    (pair,) = report["shadow"]
    assert (pair["shadow_version"], pair["primary_version"], pair["jobs"], pair["rows"]) == (
        2,
        1,
        2,
        4,
    )
    assert pair["agreement"] == pytest.approx(2 / 4)
    assert pair["mean_abs_diff"] == pytest.approx((0 + 0.5 + 1.0 + 0) / 4)


def _finished_job(s, user, model_id, version, predictions, route, shadow_of=None) -> uuid.UUID:
    job = Job(
        model_id=model_id,
        model_version=version,
        owner_id=uuid.UUID(user.id),
        status="succeeded",
        n_rows=len(predictions),
        result={"predictions": predictions},
        route=route,
        shadow_of=shadow_of,
    )
    s.add(job)
    s.flush()
    return job.id


def test_concurrent_moves_form_one_chain(app, client, user, tmp_path):
    """Each move answers the version the move before it left: from v1, moves to v2..v6 sent
    at once chain 1 -> a -> b -> c -> d -> e, each target once."""
    model = fit_classifier()
    for version in range(1, 7):
        insert_version(user, model, tmp_path, "churn", version)
    set_alias(client, user, "churn", "production", 1)
    start = threading.Barrier(5)

    def move(version: int) -> dict:
        own = app.test_client()
        start.wait()
        resp = set_alias(own, user, "churn", "production", version)
        assert resp.status_code == 200, resp.json
        return resp.json

    with ThreadPoolExecutor(5) as pool:
        moves = list(pool.map(move, range(2, 7)))
    after = {m["previous_version"]: m["version"] for m in moves}
    assert len(after) == 5  # no two moves saw the same previous version
    chain, at = [], 1
    while at in after:
        at = after[at]
        chain.append(at)
    assert sorted(chain) == [2, 3, 4, 5, 6]
    final = client.get(by_name("churn"), headers=user.headers).json["aliases"]["production"]
    assert final == chain[-1]
