"""Prometheus metrics of the workers, summed over prefork children, served by the worker's main
process on WORKER_METRICS_PORT.

Task bodies run in prefork children, and every child writes its samples to files under the
worker's own PROMETHEUS_MULTIPROC_DIR (chosen in `worker_init`, see workers/lifecycle.py); the
main process's exporter sums them at scrape time. prometheus_client picks that mode when it is
first imported, so it is imported lazily here, never at module level: the directory is set
first, in the main process, before any child forks.
"""

from __future__ import annotations

import collections
import functools
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shared.config import get_settings
from workers.runtimes.cache import CacheStats, ModelCache

log = logging.getLogger(__name__)

TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@dataclass(frozen=True)
class WorkerMetrics:
    jobs_finished: Any
    queue_time: Any
    inference_time: Any
    total_time: Any
    batch_size: Any
    cache_hits: Any
    cache_misses: Any
    cache_evictions: Any
    cache_entries: Any
    cache_bytes: Any
    batch_rows: Any
    processes: Any
    busy_seconds: Any


@functools.lru_cache(maxsize=1)
def worker_metrics() -> WorkerMetrics:
    """The metric objects, created on first use (after the multiprocess directory is set)."""
    from prometheus_client import Counter, Gauge, Histogram

    return WorkerMetrics(
        jobs_finished=Counter(
            "mlsp_jobs_finished_total", "Jobs whose outcome was written, by status", ["status"]
        ),
        queue_time=Histogram(
            "mlsp_job_queue_seconds", "Job creation to start of its run", buckets=TIME_BUCKETS
        ),
        inference_time=Histogram(
            "mlsp_job_inference_seconds",
            "A job's share of its batch's predict",
            buckets=TIME_BUCKETS,
        ),
        total_time=Histogram(
            "mlsp_job_total_seconds", "Job creation to result written", buckets=TIME_BUCKETS
        ),
        batch_size=Histogram("mlsp_batch_size", "Jobs per predict batch", buckets=BATCH_BUCKETS),
        cache_hits=Counter("mlsp_model_cache_hits_total", "Model cache hits"),
        cache_misses=Counter("mlsp_model_cache_misses_total", "Model cache misses (loads)"),
        cache_evictions=Counter("mlsp_model_cache_evictions_total", "Models dropped from a cache"),
        cache_entries=Gauge(
            "mlsp_model_cache_entries",
            "Models loaded, all live processes",
            multiprocess_mode="livesum",
        ),
        cache_bytes=Gauge(
            "mlsp_model_cache_bytes",
            "Estimated bytes of loaded models",
            multiprocess_mode="livesum",
        ),
        batch_rows=Counter(
            "mlsp_batch_rows_total",
            "Rows of batches (bulk file predictions) written, by outcome",
            ["outcome"],
        ),
        # Utilisation = rate(busy seconds) / processes: a counter, not a busy/idle gauge, so
        # that tasks shorter than the scrape interval still count.
        processes=Gauge(
            "mlsp_worker_processes",
            "Pool processes (prefork children) alive",
            multiprocess_mode="livesum",
        ),
        busy_seconds=Counter(
            "mlsp_worker_busy_seconds_total", "Seconds pool processes spent running tasks"
        ),
    )


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def observe_jobs(batch_size: int, finished: Iterable[dict[str, Any]]) -> None:
    """One predict batch of `batch_size` jobs, and the rows (status, *_ms) written for it."""
    m = worker_metrics()
    if batch_size:
        m.batch_size.observe(batch_size)
    histograms = (
        (m.queue_time, "queue_ms"),
        (m.inference_time, "inference_ms"),
        (m.total_time, "total_ms"),
    )
    statuses: collections.Counter[str] = collections.Counter()
    for job in finished:
        statuses[job["status"]] += 1
        for histogram, key in histograms:
            value = _seconds(job.get(key))
            if value is not None:
                histogram.observe(max(value, 0.0))
    for status, count in statuses.items():  # once per status, not per job: a batch has many
        m.jobs_finished.labels(status).inc(count)


def jobs_finished(status: str, count: int) -> None:
    """Jobs ended outside a predict batch (expired by TTL, failed by the reaper)."""
    if count:
        worker_metrics().jobs_finished.labels(status).inc(count)


# What this process had already reported; the cache keeps running totals.
_reported = CacheStats()


def batch_rows(predicted: int, failed: int) -> None:
    """A batch chunk's rows, once its write was kept."""
    try:
        counter = worker_metrics().batch_rows
        counter.labels("predicted").inc(predicted)
        counter.labels("failed").inc(failed)
    except Exception:  # metrics must never fail a chunk
        log.debug("batch row metrics not recorded", exc_info=True)


def process_started() -> None:
    """A pool process is up (its live gauge leaves the sum when it exits)."""
    worker_metrics().processes.set(1)


def task_ran(seconds: float) -> None:
    """A task body ran for `seconds` in this process."""
    worker_metrics().busy_seconds.inc(max(seconds, 0.0))


def sync_cache(cache: ModelCache) -> None:
    """Bring the cache counters and gauges up to date with this process's cache."""
    m = worker_metrics()
    stats = cache.stats
    m.cache_hits.inc(max(stats.hits - _reported.hits, 0))
    m.cache_misses.inc(max(stats.misses - _reported.misses, 0))
    m.cache_evictions.inc(max(stats.evictions - _reported.evictions, 0))
    _reported.hits, _reported.misses = stats.hits, stats.misses
    _reported.evictions = stats.evictions
    m.cache_entries.set(len(cache))
    m.cache_bytes.set(cache.total_bytes)


def exposition_registry() -> Any:
    """What the exporter serves: every process's files in multiprocess mode, else this one."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def start_exporter(port: int, host: str | None = None) -> Any | None:
    """Serve /metrics on `port` from this (main) process; None (and a warning) if it cannot bind,
    e.g. a second worker on the same host: a busy port must not stop the worker. The address is
    WORKER_METRICS_HOST (loopback unless the operator opens it, e.g. to a compose network)."""
    from prometheus_client import start_http_server

    host = host or get_settings().worker_metrics_host
    try:
        server, _thread = start_http_server(port, addr=host, registry=exposition_registry())
    except OSError as exc:
        log.warning("worker metrics: cannot listen on %s:%d (%s)", host, port, exc)
        return None
    log.info("worker metrics on http://%s:%d/metrics", host, port)
    return server
