"""Prometheus metrics of the web tier, served at `/metrics` on the server root (docs/operations.md).

Every web server process counts for itself; with PROMETHEUS_MULTIPROC_DIR set (by
web/serve.py) the files of all of them are summed at scrape time, so whichever process
answers the scrape reports the whole server. Queue depths are read from Redis at scrape time,
as aggregates: the endpoint has no auth, and a model id label would list tenants' models.
"""

from __future__ import annotations

import logging
import os

from flask import Flask, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from shared.config import Settings
from shared.queue_depths import read_depths
from shared.redis_client import client_for

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

HTTP_REQUESTS = Counter(
    "mlsp_http_requests_total",
    "HTTP requests answered, by method, route (URL rule) and status",
    ["method", "route", "status"],
)
HTTP_LATENCY = Histogram(
    "mlsp_http_request_duration_seconds",
    "Time from the first request hook to the response, by method, route and status",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
JOBS_SUBMITTED = Counter(
    "mlsp_jobs_submitted_total", "Prediction jobs created (idempotent replays not counted)"
)


def observe_request(method: str, route: str, status: int, seconds: float) -> None:
    """Count one answered request; `route` is the URL rule, never the raw path."""
    labels = (method, route, str(status))
    HTTP_REQUESTS.labels(*labels).inc()
    HTTP_LATENCY.labels(*labels).observe(seconds)


def job_submitted(count: int = 1) -> None:
    """A new job row was committed (call once per created job, not for idempotent replays)."""
    JOBS_SUBMITTED.inc(count)


class QueueDepthCollector(Collector):
    """Celery queue lengths and the per-model pending lists in aggregate, read when scraped."""

    def __init__(self, queues: list[str], redis_url: str, top_models: int = 0) -> None:
        self.queues = queues
        self.redis_url = redis_url
        self.top_models = top_models  # METRICS_TOP_MODELS: 0 names no model

    def collect(self):
        up = GaugeMetricFamily("mlsp_queue_depth_up", "1 when Redis answered the depth read")
        try:
            depths = read_depths(client_for(self.redis_url), self.queues, self.top_models)
        except Exception:  # an unreachable broker must not break the rest of the scrape
            log.warning("metrics: queue depth read failed", exc_info=True)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from _depth_families(depths)


def _depth_families(depths):
    celery = GaugeMetricFamily(
        "mlsp_queue_depth", "Messages waiting in a Celery queue", labels=["queue"]
    )
    for name, n in depths.celery.items():
        celery.add_metric([name], n)
    total = GaugeMetricFamily("mlsp_pending_jobs", "Job ids waiting in all per-model lists")
    total.add_metric([], depths.pending_total)
    models = GaugeMetricFamily("mlsp_pending_models", "Models with job ids waiting")
    models.add_metric([], depths.pending_models)
    longest = GaugeMetricFamily(
        "mlsp_pending_jobs_max", "Job ids waiting in the longest per-model list (a hot model)"
    )
    longest.add_metric([], depths.pending_max)
    return [celery, total, models, longest, *_by_model(depths)]


def _by_model(depths):
    if not depths.top_models:  # off (METRICS_TOP_MODELS=0) or nothing waiting: no family
        return []
    family = GaugeMetricFamily(
        "mlsp_pending_jobs_by_model",
        "Job ids waiting for a model: the METRICS_TOP_MODELS longest lists only",
        labels=["model_id"],
    )
    for model_id, n in depths.top_models:
        family.add_metric([model_id], n)
    return [family]


def _process_registry() -> CollectorRegistry:
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY  # one process (tests, `flask run`): its own counters are the truth
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def metrics_view() -> Response:
    """Prometheus text format: this server's counters plus the queue depths."""
    body = generate_latest(_process_registry())
    body += generate_latest(current_app.extensions["mlsp_queue_registry"])
    return Response(body, mimetype=CONTENT_TYPE_LATEST)


def register_metrics(app: Flask, settings: Settings) -> None:
    """`GET /metrics` (no auth, no rate limit: bind it to an internal network in deployment)."""
    from web.limits import limiter

    queue_registry = CollectorRegistry(auto_describe=False)
    # Both Celery queues: an autoscaler scales the batch worker on its own queue's depth.
    queues = [settings.default_queue, settings.batch_queue]
    collector = QueueDepthCollector(queues, settings.redis_url, settings.metrics_top_models)
    queue_registry.register(collector)
    app.extensions["mlsp_queue_registry"] = queue_registry
    app.add_url_rule("/metrics", "metrics", limiter.exempt(metrics_view))
