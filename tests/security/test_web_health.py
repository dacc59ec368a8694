"""Issue 18, findings 4 and 12: the unauthenticated health report and /metrics.

40 concurrent `GET /api/v1/health` used to deadlock the shared producer's kombu pool (a
broadcast ping per request) and hang every request of the process until a restart; both
endpoints listed model ids (tenants' models) to anyone.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from shared.config import Settings
from shared.redis_client import PREFIX, get_redis
from tests.fixtures.live import serve
from web import create_app

BURST = 40


def test_burst_of_health_requests_never_hangs_the_process(app, worker):
    """A real threaded server: 40 at once all answer, and the worker count still arrives (from
    the background ping, not from the requests)."""
    with serve(app) as base, ThreadPoolExecutor(BURST) as pool:
        started = time.monotonic()
        answers = list(
            pool.map(lambda _: requests.get(f"{base}/api/v1/health", timeout=10), range(BURST))
        )
        burst_s = time.monotonic() - started
        assert [r.status_code for r in answers] == [200] * BURST
        assert burst_s < 5, burst_s
        ready = requests.get(f"{base}/api/v1/health/ready", timeout=5)
        assert ready.status_code == 200
        deadline = time.monotonic() + 15
        while (body := requests.get(f"{base}/api/v1/health", timeout=5).json())["checks"][
            "workers"
        ] < 1 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert body["checks"]["workers"] >= 1 and body["status"] == "ok"
    print(f"{BURST} concurrent /health: all 200 in {burst_s * 1000:.0f} ms")


def test_health_is_rate_limited_per_client():
    client = create_app(
        Settings(RATE_LIMIT_ENABLED=True, RATE_LIMIT_HEALTH="3/minute")
    ).test_client()
    codes = [client.get("/api/v1/health").status_code for _ in range(4)]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/api/v1/health")
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
    assert limited.json["error"]["code"] == "rate_limited"
    assert client.get("/api/v1/health/live").status_code == 200  # probes are not limited


def test_health_and_metrics_name_no_model(client):
    redis = get_redis()
    models = [str(uuid.uuid4()) for _ in range(3)]
    for n, model_id in enumerate(models, start=1):
        redis.rpush(f"{PREFIX}pending:{model_id}", *[f"job-{i}" for i in range(n)])
    health = client.get("/api/v1/health")
    metrics = client.get("/metrics").get_data(as_text=True)
    for model_id in models:
        assert model_id not in health.get_data(as_text=True)
        assert model_id not in metrics
    assert health.json["queues"]["pending"] == 6
    assert "pending:" not in "".join(health.json["queues"])
    assert "mlsp_pending_jobs 6.0" in metrics and "mlsp_pending_jobs_max 3.0" in metrics
