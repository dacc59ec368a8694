"""The health probes (web/health.py) on the real database and Redis."""

from __future__ import annotations


def test_liveness(client):
    resp = client.get("/api/v1/health/live")
    assert resp.status_code == 200
    assert resp.json == {"status": "ok"}
    assert resp.headers["X-Request-ID"]


def test_readiness_checks_database_and_broker(client):
    assert client.get("/api/v1/health/ready").status_code == 200
