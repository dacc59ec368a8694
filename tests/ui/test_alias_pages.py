"""Aliases and traffic on the model page: set and move an alias (the version it left is shown),
remove it, split the traffic with a shadow and clear it; the service's 409/422 answers shown as
the form's errors; the versions compared with the shadow's agreement; CSRF and another user's
name out of reach (404)."""

from __future__ import annotations

import re
import uuid

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, text

from shared.aliases.table import ModelAlias, TrafficRoute
from shared.models import MLModel
from tests.ui.pages import csrf_token, ready_model, sign_up, user_id
from web.extensions import db


def _models(app: Flask, owner: uuid.UUID) -> dict[int, uuid.UUID]:
    """iris v1 and v2 ready, v3 still validating."""
    ids = {v: ready_model(app, owner, version=v) for v in (1, 2, 3)}
    with app.app_context():
        db.session.get(MLModel, ids[3]).status = "validating"
        db.session.commit()
    return ids


def _post(client: FlaskClient, path: str, **data) -> tuple[int, str]:
    data["csrf_token"] = csrf_token(client, "/models/iris")
    resp = client.post(path, data=data, follow_redirects=True)
    return resp.status_code, resp.get_data(as_text=True)


def _aliases(app: Flask) -> dict[str, uuid.UUID]:
    with app.app_context():
        return dict(db.session.execute(select(ModelAlias.alias, ModelAlias.model_id)).all())


def test_set_move_and_remove_an_alias(app: Flask, browser_client: FlaskClient) -> None:
    ids = _models(app, user_id(app, sign_up(browser_client)))
    page = browser_client.get("/models/iris").get_data(as_text=True)
    assert "No aliases yet." in page
    assert '<option value="1">v1</option>' in page and '<option value="3">' not in page

    assert (
        browser_client.post(
            "/models/iris/aliases", data={"alias": "prod", "version": "1"}
        ).status_code
        == 400
    )
    status, page = _post(browser_client, "/models/iris/aliases", alias="production", version="1")
    assert status == 200 and "iris@production now points to v1 (new)." in page
    status, page = _post(browser_client, "/models/iris/aliases", alias="production", version="2")
    assert "iris@production now points to v2 (before: v1)." in page
    assert 'data-alias="production"' in page and _aliases(app) == {"production": ids[2]}
    assert "<td><code>@production</code></td>" in page  # the versions table says where it points

    # The service's 422 (a reserved name) and the form's own refusal (a version not ready).
    status, page = _post(browser_client, "/models/iris/aliases", alias="latest", version="1")
    assert status == 422 and "&#39;latest&#39; (reserved)" in page
    status, page = _post(browser_client, "/models/iris/aliases", alias="staging", version="3")
    assert status == 422 and "Not a valid choice" in page

    # Disabling or deleting a version an alias points to is refused with the reason on the page.
    status, page = _post(browser_client, "/models/iris/versions/2/status", status="disabled")
    assert "Not changed: Version 2 of &#39;iris&#39; is in use (iris@production)" in page
    status, page = _post(browser_client, "/models/iris/versions/2/delete")
    assert "Not deleted: Version 2" in page

    status, page = _post(browser_client, "/models/iris/aliases/production/delete")
    assert "Removed iris@production" in page and _aliases(app) == {}
    changes = re.sub(r"\s+", " ", page)
    for said in ("set to v1", "moved from v1 to v2", "removed (was v2)"):
        assert f"<code>iris@production</code> {said}" in changes
    status, _ = _post(browser_client, "/models/iris/aliases/production/delete")
    assert status == 404


def test_traffic_split_shadow_and_clear(app: Flask, browser_client: FlaskClient) -> None:
    _models(app, user_id(app, sign_up(browser_client)))
    status, page = _post(
        browser_client, "/models/iris/traffic", **{"weight-1": "50", "weight-2": "40"}
    )
    assert status == 422 and "Route weights must sum to 100" in page
    assert (
        'name="weight-1" type="number" min="0" max="100" step="1" inputmode="numeric" value="50"'
        in page
    )
    status, page = _post(browser_client, "/models/iris/traffic", **{"weight-1": "x"})
    assert status == 422 and "v1: a weight is a whole number of percent" in page
    status, page = _post(browser_client, "/models/iris/traffic")
    assert status == 422 and "Give at least one ready version a weight." in page
    # The service's 409: the shadow version is not ready.
    status, page = _post(
        browser_client,
        "/models/iris/traffic",
        **{"weight-1": "100", "shadow_version": "3", "shadow_percent": "10"},
    )
    assert status == 409 and "Version 3 of &#39;iris&#39; is validating" in page

    status, page = _post(
        browser_client,
        "/models/iris/traffic",
        **{"weight-1": "100", "shadow_version": "2", "shadow_percent": "25"},
    )
    assert status == 200 and "Traffic of iris: v1 100 %; shadow v2 25 %." in page
    assert "v1 100 %; v2 also gets a copy of 25 %" in page
    with app.app_context():
        roles = db.session.execute(select(TrafficRoute.role, TrafficRoute.weight)).all()
    assert sorted(roles) == [("route", 100), ("shadow", 25)]

    status, page = _post(browser_client, "/models/iris/traffic/clear")
    assert "Traffic split of iris removed" in page and "No split:" in page
    changes = re.sub(r"\s+", " ", page)
    assert "traffic set: v1 100 %; shadow v2 25 %" in changes and "traffic split cleared" in changes
    status, _ = _post(browser_client, "/models/iris/traffic/clear")
    assert status == 404


def test_versions_compared_with_shadow_agreement(app: Flask, browser_client: FlaskClient) -> None:
    owner = user_id(app, sign_up(browser_client))
    ids = _models(app, owner)
    with app.app_context():  # a primary job on v1 and its shadow copy on v2: 1 of 2 rows agree
        db.session.execute(
            text(
                """
                WITH p AS (
                  INSERT INTO jobs (id, model_id, model_version, owner_id, status, n_rows, result,
                                    total_ms, created_at, finished_at)
                  VALUES (gen_random_uuid(), :v1, 1, :owner, 'succeeded', 2,
                          '{"predictions": [0, 1]}', 3, now(), now()) RETURNING id)
                INSERT INTO jobs (id, model_id, model_version, owner_id, status, n_rows, result,
                                  total_ms, route, shadow_of, created_at, finished_at)
                SELECT gen_random_uuid(), :v2, 2, :owner, 'succeeded', 2,
                       '{"predictions": [0, 0]}', 4, 'shadow', p.id, now(), now() FROM p
                """
            ),
            {"v1": ids[1], "v2": ids[2], "owner": owner},
        )
        db.session.commit()
    with app.app_context():
        shadow, primary = db.session.execute(
            text("SELECT id, shadow_of FROM jobs WHERE route = 'shadow'")
        ).one()
    job_page = browser_client.get(f"/jobs/{shadow}").get_data(as_text=True)
    assert "as a shadow copy (its answer is not returned)" in job_page
    assert f'<dt>Shadow of</dt><dd><a href="/jobs/{primary}">' in job_page
    page = browser_client.get("/models/iris/versions?days=500").get_data(as_text=True)
    assert 'value="90"' in page  # the window is clamped to what the analytics take
    for version in (1, 2, 3):
        assert f'data-version="{version}"' in page
    cells = re.sub(r"\s+", " ", page)
    assert '<th scope="row">v2</th> <td>v1</td> <td>1</td> <td>2</td> <td>50.0 %</td>' in cells


def test_another_users_name_is_404(app: Flask, browser_client: FlaskClient) -> None:
    _models(app, user_id(app, sign_up(browser_client)))
    assert _post(browser_client, "/models/iris/aliases", alias="production", version="1")[0] == 200
    stranger = app.test_client()
    sign_up(stranger)
    token = csrf_token(stranger, "/models")
    assert stranger.get("/models/iris/versions").status_code == 404
    for path, data in (
        ("/models/iris/aliases", {"alias": "mine", "version": "1"}),
        ("/models/iris/aliases/production/delete", {}),
        ("/models/iris/traffic", {"weight-1": "100"}),
        ("/models/iris/traffic/clear", {}),
    ):
        assert stranger.post(path, data={"csrf_token": token, **data}).status_code == 404, path
    assert list(_aliases(app)) == ["production"]
