"""Celery settings shared by the worker app and the web tier's producer, plus the task names.

The web tier sends tasks by name (it never imports `workers`); the names below are the contract.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from celery import Celery
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis

from shared.config import Settings, get_settings
from shared.redis_client import sentinel_target

log = logging.getLogger(__name__)

VALIDATE_MODEL = "mlsp.validate_model"
DRAIN_MODEL = "mlsp.drain_model"
REAP_JOBS = "mlsp.reap_jobs"
REAP_MODELS = "mlsp.reap_models"
EXPIRE_JOBS = "mlsp.expire_jobs"
PRUNE_HISTORY = "mlsp.prune_history"
PURGE_ARTIFACTS = "mlsp.purge_artifacts"
PLAN_BATCH = "mlsp.plan_batch"
BATCH_CHUNK = "mlsp.batch_chunk"
FINISH_BATCH = "mlsp.finish_batch"
DISPATCH_WEBHOOKS = "mlsp.dispatch_webhooks"
PULL_WEBHOOKS = "mlsp.pull_webhooks"
PRUNE_WEBHOOKS = "mlsp.prune_webhooks"


def beat_schedule(settings: Settings) -> dict[str, Any]:
    """Periodic housekeeping (the `beat` process): one beat per deployment."""
    return {
        "reap-stuck-jobs": {"task": REAP_JOBS, "schedule": settings.job_reaper_interval_s},
        "reap-stuck-models": {"task": REAP_MODELS, "schedule": 60.0},
        "expire-queued-jobs": {"task": EXPIRE_JOBS, "schedule": 30.0},
        "prune-job-history": {"task": PRUNE_HISTORY, "schedule": 3600.0},
        "purge-deleted-artifacts": {"task": PURGE_ARTIFACTS, "schedule": 3600.0},
        # Webhook deliveries due (the outbox, workers/webhooks/): on their own queue; a dispatch
        # nobody took within its interval is dropped, the next one does the same work.
        "dispatch-webhooks": {
            "task": DISPATCH_WEBHOOKS,
            "schedule": settings.webhook_dispatch_interval_s,
            "options": {
                "queue": settings.webhook_queue,
                "expires": max(1.0, settings.webhook_dispatch_interval_s),
            },
        },
        "prune-webhook-deliveries": {
            "task": PRUNE_WEBHOOKS,
            "schedule": 3600.0,
            "options": {"queue": settings.webhook_queue},
        },
    }


def broker(settings: Settings) -> tuple[str, dict[str, Any]]:
    """The broker URL and the transport options it needs beyond the common ones: behind
    Sentinel, kombu's `sentinel://` transport (one URL per sentinel, `;`-separated) and the
    master's name; it asks the sentinels for the master on every (re)connection."""
    target = sentinel_target(settings.redis_url)
    if target is None:
        return settings.redis_url, {}
    auth = ""
    if target.password:
        auth = f"{quote(target.username or '')}:{quote(target.password)}@"
    url = ";".join(f"sentinel://{auth}{h}:{p}/{target.db}" for h, p in target.sentinels)
    options: dict[str, Any] = {"master_name": target.master}
    if target.sentinel_password:
        options["sentinel_kwargs"] = {"password": target.sentinel_password}
    return url, options


class _SentinelChannel(kombu_redis.SentinelChannel):
    """kombu's Sentinel channel, made to survive a failover (kombu 5.7). After a broker loss
    Celery collects the connection, then closes its channel and reconnects; the closed channel
    has no server address left, and two calls on it raised AttributeError, which Celery's
    consumer treats as unrecoverable (the worker exited at the failover):
    - closing it tried to restore the unacknowledged messages;
    - a task that was running through the failover acked its message on it when it ended.
    Both are skipped. Nothing is lost: the messages stay in the unacked hash, which the
    visibility-timeout restore of any worker hands out again (tasks are idempotent), and the
    jobs behind them are in PostgreSQL for the reaper."""

    def close(self) -> None:
        if self.connection is not None and self.connection.client is None:
            self.do_restore = False
        super().close()

    def basic_ack(self, delivery_tag: Any, multiple: bool = False) -> None:
        if self._gone():
            return
        super().basic_ack(delivery_tag, multiple=multiple)

    def basic_reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        if self._gone():
            return
        super().basic_reject(delivery_tag, requeue=requeue)

    def _gone(self) -> bool:
        """Closed by a broker loss: nothing to ack or reject through (see the class)."""
        if self.connection is None or self.connection.client is None:
            log.warning("broker channel closed by a failover: ack/reject left to the restore")
            return True
        return False


class SentinelTransport(kombu_redis.SentinelTransport):
    Channel = _SentinelChannel


# Under its alias: on a connection error kombu switches to the next sentinel's URL and resolves
# the transport again from the URL's scheme (a `broker_transport` setting is lost there).
TRANSPORT_ALIASES["sentinel"] = f"{__name__}:SentinelTransport"


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings; each one that differs from Celery's default says why."""
    broker_url, sentinel_options = broker(settings)
    return {
        "broker_url": broker_url,
        # Results live in PostgreSQL (jobs table); tasks report nothing through Celery.
        "result_backend": None,
        "task_ignore_result": True,
        # json only: a broker message must never be able to run code in a worker.
        "task_serializer": "json",
        "accept_content": ["json"],
        "task_default_queue": settings.default_queue,
        # Late acks + reject on lost worker: a job whose process dies (kill -9, OOM) is
        # redelivered instead of silently dropped. Tasks are idempotent (conditional writes).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_soft_time_limit": settings.task_soft_time_limit_s,
        "task_time_limit": settings.task_time_limit_s,
        # One message per child at a time: with late acks a prefetched message waits in a
        # worker's buffer while its visibility timeout runs, and cannot go to an idle worker.
        "worker_prefetch_multiplier": 1,
        # A soft recycle (KiB of RSS, checked after each task); the hard cap is each child's
        # RLIMIT_AS (workers/lifecycle.py, WORKER_MEMORY_LIMIT_MB).
        "worker_max_memory_per_child": settings.worker_max_memory_per_child_mb * 1024 or None,
        # Events feed Flower's task views.
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            # An unacked message is handed out again after this: it must exceed the longest task
            # (hard time limit) plus the time a prefetched message can wait behind one, or a
            # slow task is delivered twice (harmless: writes are fenced, but wasted work). It is
            # also how long a message of a worker killed outright (main process and all) waits
            # before redelivery; the reaper usually requeues its jobs sooner.
            "visibility_timeout": max(300, settings.task_time_limit_s * 3),
            # kombu restores unacked messages only every ~100 s by default
            # (docs/measurements.md, "kombu's unacked restore interval").
            "unacked_restore_interval": 1,
            "unacked_restore_throttle": 1,
            **sentinel_options,
        },
        "worker_hijack_root_logger": False,
        "beat_schedule": beat_schedule(settings),
        "timezone": "UTC",
    }


def create_producer(settings: Settings | None = None) -> Celery:
    """A Celery app that only publishes (web tier): same broker and serializer as the workers."""
    app = Celery("mlsp", set_as_current=False)
    app.conf.update(celery_config(settings or get_settings()))
    return app
