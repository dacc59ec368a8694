"""The one Celery application, built from the shared configuration. Never imports `web`."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from shared import db, redis_client
from shared.celery_config import celery_config
from shared.config import Settings, get_settings
from workers import lifecycle


def create_celery(settings: Settings | None = None) -> Celery:
    """Build the Celery app from settings (tests pass their own)."""
    settings = settings or get_settings()
    app = Celery(
        "mlsp", include=["workers.tasks", "workers.batches.tasks", "workers.webhooks.tasks"]
    )
    app.conf.update(celery_config(settings))
    return app


app = create_celery()
lifecycle.connect()  # JSON logs, per-task log context, metrics exporter (workers/lifecycle.py)


@worker_process_init.connect
def _fresh_connections_after_fork(**_: Any) -> None:
    # A forked child must not reuse the parent's sockets: pooled connections are per process.
    db.dispose_engine()
    redis_client.reset_clients()
