"""The worker's metric functions (workers/metrics.py), in one process without Celery."""

from __future__ import annotations

import pytest

from workers import metrics as worker_metrics
from workers.runtimes.cache import ModelCache


@pytest.mark.no_db
def test_worker_job_and_batch_metrics():
    from prometheus_client import REGISTRY

    def get(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = get("mlsp_jobs_finished_total", status="failed"), get("mlsp_batch_size_count")
    rows = [
        {"status": "succeeded", "queue_ms": 12.0, "inference_ms": 0.5, "total_ms": 14.0},
        {"status": "failed", "queue_ms": 3.0, "inference_ms": None, "total_ms": 4.0},
    ]
    worker_metrics.observe_jobs(2, rows)
    assert get("mlsp_jobs_finished_total", status="failed") == before[0] + 1
    assert get("mlsp_batch_size_count") == before[1] + 1
    assert get("mlsp_job_queue_seconds_bucket", le="0.025") >= 2


@pytest.mark.no_db
def test_worker_cache_metrics_follow_the_cache():
    from prometheus_client import REGISTRY

    cache = ModelCache(max_entries=1, max_bytes=1000)
    hits = REGISTRY.get_sample_value("mlsp_model_cache_hits_total") or 0.0
    evictions = REGISTRY.get_sample_value("mlsp_model_cache_evictions_total") or 0.0
    cache.get_or_load(("a", "1"), 10, lambda: "A")
    cache.get_or_load(("a", "1"), 10, lambda: "A")
    cache.get_or_load(("b", "1"), 20, lambda: "B")  # evicts a
    worker_metrics._reported.__init__()  # this process's cache is the only one here
    worker_metrics.sync_cache(cache)
    assert REGISTRY.get_sample_value("mlsp_model_cache_hits_total") == hits + 1
    assert REGISTRY.get_sample_value("mlsp_model_cache_evictions_total") == evictions + 1
    assert REGISTRY.get_sample_value("mlsp_model_cache_entries") == 1
    assert REGISTRY.get_sample_value("mlsp_model_cache_bytes") == 20
