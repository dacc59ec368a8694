"""METRICS_TOP_MODELS: /metrics names the models with the longest pending lists (the dashboard's
"backlog per model"), bounded in number; off by default (tests/security/test_web_health.py)."""

from __future__ import annotations

import uuid

from prometheus_client.parser import text_string_to_metric_families

from shared.config import Settings
from shared.redis_client import PREFIX, get_redis
from web import create_app


def _by_model(client) -> dict[str, float]:
    text = client.get("/metrics").get_data(as_text=True)
    return {
        s.labels["model_id"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "mlsp_pending_jobs_by_model"
    }


def test_longest_lists_named_up_to_the_limit(private_queue):
    redis = get_redis()
    models = [str(uuid.uuid4()) for _ in range(4)]
    # 101..104 job ids waiting: longer than any list another test of the run may leave behind
    for n, model_id in enumerate(models, start=101):
        redis.rpush(f"{PREFIX}pending:{model_id}", *[f"job-{i}" for i in range(n)])
    try:
        env = {**private_queue.env, "METRICS_TOP_MODELS": "2"}
        named = _by_model(create_app(Settings(**env)).test_client())
        assert named == {models[3]: 104, models[2]: 103}
        assert _by_model(private_queue.client) == {}  # the default names none
    finally:
        redis.delete(*[f"{PREFIX}pending:{m}" for m in models])
