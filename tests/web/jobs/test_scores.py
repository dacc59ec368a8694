"""An outlier detector's score_samples, returned when a request asks (`return_scores`): on the
inline and durable paths, equal to the local model's, and refused for models without them."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression

from tests.fixtures.models import upload_ready
from tests.web.jobs.calls import job_count, poll, submit

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("worker")]

RNG = np.random.default_rng(5)
X = RNG.normal(size=(300, 3))
ROWS = np.vstack([RNG.normal(size=(4, 3)), [[8.0, -8.0, 8.0]]])


def test_scores_when_asked(client, user, tmp_path):
    model = IsolationForest(n_estimators=50, random_state=0).fit(X)
    meta = upload_ready(client, user, model, tmp_path, name="outliers")
    assert meta["output_schema"] == {
        "task": "outlier",
        "classes": None,
        "has_proba": False,
        "has_scores": True,
    }
    body = {"inputs": ROWS.tolist(), "return_scores": True}
    inline = client.post(f"/api/v1/models/{meta['id']}/predict", json=body, headers=user.headers)
    assert inline.status_code == 200, inline.json
    result = inline.json["result"]
    assert result["predictions"] == model.predict(ROWS).tolist()
    assert result["predictions"][-1] == -1  # the far point is an outlier
    np.testing.assert_allclose(result["scores"], model.score_samples(ROWS), rtol=1e-12)
    assert inline.json["runtime"] == "sklearn"  # score_samples: scikit-learn's own

    queued = submit(client, user, meta["id"], body)
    done = poll(client, user, queued.json["id"]).json
    np.testing.assert_allclose(done["result"]["scores"], model.score_samples(ROWS), rtol=1e-12)

    plain = client.post(
        f"/api/v1/models/{meta['id']}/predict",
        json={"inputs": ROWS.tolist()},
        headers=user.headers,
    ).json
    assert plain["result"]["scores"] is None
    assert plain["result"]["predictions"] == model.predict(ROWS).tolist()


def test_scores_refused_where_the_model_has_none(client, user, tmp_path):
    model = LogisticRegression().fit(X, X[:, 0] > 0)
    meta = upload_ready(client, user, model, tmp_path, name="no-scores")
    before = job_count()
    resp = client.post(
        f"/api/v1/models/{meta['id']}/predict",
        json={"inputs": ROWS.tolist(), "return_scores": True},
        headers=user.headers,
    )
    assert resp.status_code == 422
    assert resp.json["error"]["details"] == {"field": "return_scores"}
    assert job_count() == before
