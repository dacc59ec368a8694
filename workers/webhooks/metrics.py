"""Prometheus metrics of webhook deliveries, in the webhooks worker (multiprocess files summed by
its main process, as workers/metrics.py explains; prometheus_client is imported lazily for the
same reason)."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15)


@dataclass(frozen=True)
class WebhookMetrics:
    attempts: Any
    latency: Any
    pending: Any


@functools.lru_cache(maxsize=1)
def webhook_metrics() -> WebhookMetrics:
    from prometheus_client import Counter, Gauge, Histogram

    return WebhookMetrics(
        attempts=Counter(
            "mlsp_webhook_attempts_total",
            "Webhook delivery attempts by outcome (delivered, retrying, failed, gone, refused)",
            ["outcome"],
        ),
        latency=Histogram(
            "mlsp_webhook_attempt_seconds",
            "One delivery attempt: connect to the receiver's answer",
            buckets=LATENCY_BUCKETS,
        ),
        pending=Gauge(
            "mlsp_webhook_pending_deliveries",
            "Deliveries not yet delivered nor given up, as the last dispatch counted them",
            multiprocess_mode="mostrecent",
        ),
    )


def attempt(outcome: str, seconds: float | None) -> None:
    try:
        m = webhook_metrics()
        m.attempts.labels(outcome).inc()
        if seconds is not None:
            m.latency.observe(max(seconds, 0.0))
    except Exception:  # metrics must never fail a delivery
        log.debug("webhook metrics not recorded", exc_info=True)


def pending(count: int) -> None:
    try:
        webhook_metrics().pending.set(count)
    except Exception:
        log.debug("webhook metrics not recorded", exc_info=True)
