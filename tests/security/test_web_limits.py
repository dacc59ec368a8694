"""Issue 18, finding 12: model uploads are rate limited per user (RATE_LIMIT_UPLOAD)."""

from __future__ import annotations

import io

from shared.config import Settings
from tests.fixtures.api import register_and_login
from web import create_app


def test_uploads_are_rate_limited_per_user(private_queue):
    settings = Settings(
        RATE_LIMIT_ENABLED=True, RATE_LIMIT_UPLOAD="2/hour", DEFAULT_QUEUE=private_queue.name
    )
    client = create_app(settings).test_client()
    first, second = register_and_login(client), register_and_login(client)

    def upload(account):
        data = {"name": "m", "file": (io.BytesIO(b"not a model"), "m.joblib")}
        return client.post(
            "/api/v1/models", data=data, headers=account.headers, content_type="multipart/form-data"
        )

    assert [upload(first).status_code for _ in range(3)] == [415, 415, 429]
    limited = upload(first)
    assert limited.json["error"]["code"] == "rate_limited"
    assert int(limited.headers["Retry-After"]) > 0
    assert upload(second).status_code == 415  # per user, not per server
