"""`/metrics` on the web tier."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families

from shared.queue_depths import read_depths
from shared.redis_client import PREFIX, get_redis
from web import metrics as web_metrics


def scrape(client) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of a /metrics answer (parsed strictly)."""
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.content_type.startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(resp.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_at_root_without_auth(client):
    samples = scrape(client)
    assert value(samples, "mlsp_queue_depth_up") == 1
    assert client.get("/api/v1/metrics").status_code == 404


def test_request_counter_moves_by_route_not_path(client):
    route = "/api/v1/jobs/<uuid:job_id>"
    labels = {"method": "GET", "route": route, "status": "401"}
    before = scrape(client)
    for _ in range(3):
        assert client.get(f"/api/v1/jobs/{uuid.uuid4()}").status_code == 401
    after = scrape(client)
    assert (
        value(after, "mlsp_http_requests_total", **labels)
        == value(before, "mlsp_http_requests_total", **labels) + 3
    )
    assert value(after, "mlsp_http_request_duration_seconds_count", **labels) >= 3
    assert not [k for k in after if any(str(v).count("-") == 4 for _, v in k[1])], "raw ids"


def test_unmatched_paths_share_one_label(client):
    for path in ("/nope/1", "/nope/2"):
        client.get(path)
    samples = scrape(client)
    labels = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert value(samples, "mlsp_http_requests_total", **labels) >= 2


def test_queue_depths_in_aggregate_and_celery_queue(private_queue):
    """On a queue no worker consumes (a message there must not reach a real worker). No model
    ids: /metrics and /health have no auth (tests/security/test_web_health.py)."""
    client, queue, redis = private_queue.client, private_queue.name, get_redis()
    model_a, model_b = str(uuid.uuid4()), str(uuid.uuid4())
    redis.rpush(f"{PREFIX}pending:{model_a}", "j1", "j2", "j3")
    redis.rpush(f"{PREFIX}pending:{model_b}", "j4")
    redis.rpush(queue, "not-a-real-message")
    try:
        samples = scrape(client)
        assert value(samples, "mlsp_pending_jobs") == 4
        assert value(samples, "mlsp_pending_models") == 2
        assert value(samples, "mlsp_pending_jobs_max") == 3
        assert value(samples, "mlsp_queue_depth", queue=queue) == 1
        health = client.get("/api/v1/health").json["queues"]
        assert health == {queue: 1, "pending": 4}
    finally:
        redis.delete(queue)


def test_depth_read_is_bounded():
    redis = get_redis()
    keys = [f"{PREFIX}pending:{uuid.uuid4()}" for _ in range(250)]
    pipe = redis.pipeline()
    for key in keys:
        pipe.rpush(key, "x")
    pipe.execute()
    depths = read_depths(redis, [])
    assert depths.pending_total == 250 and depths.pending_models == 250
    assert depths.pending_max == 1 and not depths.truncated


def test_job_submitted_counter(client):
    before = value(scrape(client), "mlsp_jobs_submitted_total")
    web_metrics.job_submitted()
    assert value(scrape(client), "mlsp_jobs_submitted_total") == before + 1
