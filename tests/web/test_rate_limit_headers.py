"""Rate-limit headers: X-RateLimit-* on every limited answer, Retry-After only on a refusal (a
client honouring Retry-After on the 202 of an accepted job would wait out the whole window)."""

from __future__ import annotations

from tests.fixtures.api import register_and_login
from tests.fixtures.models import fit_classifier, insert_ready_model, iris
from tests.fixtures.services import isolated

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
