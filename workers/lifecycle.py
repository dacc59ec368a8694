"""Celery signal handlers: JSON logging, a log context per task (task id, request id from the
task's headers), the worker's metrics exporter, its processes' place in the drain pool, each
child's memory cap and thread limit, and the record of a drain task killed at the hard time
limit.

Process model (prefork): `worker_init` and `worker_ready` run in the main process, and so does
`task_failure` for a hard time limit; `worker_process_init` (memory cap, threads), the other task
signals and `worker_process_shutdown` in the children that run task bodies.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from pathlib import Path
from typing import Any

from celery.signals import (
    setup_logging,
    task_failure,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from shared import logs, metrics_dir
from shared.config import get_settings
from shared.jobs import inputs
from workers.runtimes.threads import limit_threads

log = logging.getLogger(__name__)
_state: dict[str, Any] = {}


def _configure_logging(**_: Any) -> None:
    # Connecting this signal stops Celery from installing its own handlers and format.
    settings = get_settings()
    logs.configure_logging(settings.log_level, settings.log_format)


def _prepare_metrics(**_: Any) -> None:
    """Main process, before the pool forks: children must inherit the metrics directory."""
    settings = get_settings()
    if settings.worker_metrics_port:
        _state["dir"] = metrics_dir.prepare(Path(settings.metrics_dir), "worker")


def _start_exporter(**_: Any) -> None:
    port = get_settings().worker_metrics_port
    if port and "server" not in _state:
        from workers import metrics

        _state["server"] = metrics.start_exporter(port)


def _stop_exporter(**_: Any) -> None:
    server = _state.pop("server", None)
    if server is not None:
        server.shutdown()
    if "dir" in _state:
        metrics_dir.remove(_state.pop("dir"))


def _limit_memory(**_: Any) -> None:
    """Each child's address space is capped (RLIMIT_AS, WORKER_MEMORY_LIMIT_MB): a prediction
    that allocates past it gets a MemoryError, which fails its jobs (`out_of_memory`), instead of
    the kernel's OOM killer taking a process (issue 18)."""
    limit_mb = get_settings().worker_memory_limit_mb
    if limit_mb:
        inputs.use_system_allocator()
        limit = limit_mb * 1024 * 1024
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _limit_threads(**_: Any) -> None:
    # One BLAS/OpenMP thread per child: the pool's processes are the parallelism.
    limit_threads()


def _count_process(**_: Any) -> None:
    if get_settings().worker_metrics_port:
        from workers import metrics

        metrics.process_started()


def _child_exit(**_: Any) -> None:
    # Its live gauges (cache size) must stop counting once the child is gone.
    metrics_dir.mark_dead(os.getpid())


def _task_started(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    """Every line a task logs carries its id, its name and the request id that sent it."""
    request = getattr(task, "request", None)
    request_id = request.get("request_id") if request is not None else None
    logs.clear()
    logs.bind(task_id=task_id, task=getattr(task, "name", None), request_id=request_id)
    _state["task_started"] = time.monotonic()


def _task_finished(**_: Any) -> None:
    logs.clear()
    started = _state.pop("task_started", None)
    if get_settings().worker_metrics_port:
        _sync_cache_metrics()
        if started is not None:
            _count_busy(time.monotonic() - started)


def _count_busy(seconds: float) -> None:
    try:
        from workers import metrics

        metrics.task_ran(seconds)
    except Exception:
        log.warning("utilisation metrics update failed", exc_info=True)


def _sync_cache_metrics() -> None:
    try:
        from workers import metrics
        from workers.runtimes.cache import model_cache

        metrics.sync_cache(model_cache())
    except Exception:
        log.warning("cache metrics update failed", exc_info=True)


def _join_pool(sender: Any = None, **_: Any) -> None:
    """Main process: a worker that serves the default queue adds its processes to the pool's
    capacity, which bounds how many drain tasks pushes send (shared/queueing.py)."""
    from shared import queueing
    from shared.redis_client import get_redis

    controller = getattr(sender, "controller", None)
    queues = set(getattr(sender.app.amqp.queues, "consume_from", None) or {})
    queue = get_settings().default_queue
    if controller is None or queue not in queues:
        return
    try:
        host, processes = controller.hostname, int(controller.concurrency)
        total = queueing.register_capacity(get_redis(), queue, host, processes)
        _state["pool_host"] = host
        log.info("joined the drain pool: %s processes in all", total)
    except Exception:  # pushes fall back to WORKER_CONCURRENCY
        log.warning("could not register this worker's processes", exc_info=True)


def _leave_pool(**_: Any) -> None:
    host = _state.pop("pool_host", None)
    if host is None:
        return
    from shared import queueing
    from shared.redis_client import get_redis

    try:
        queueing.register_capacity(get_redis(), get_settings().default_queue, host, 0)
    except Exception:
        log.warning("could not unregister this worker's processes", exc_info=True)


def _task_failed(**kwargs: Any) -> None:
    # Main process: a drain task killed at the hard time limit marks its lease (issue 18).
    from workers.serving import recovery

    recovery.mark_time_kill(**kwargs)


def connect() -> None:
    """Attach the handlers (idempotent: dispatch uids)."""
    for signal, handler in (
        (setup_logging, _configure_logging),
        (worker_init, _prepare_metrics),
        (worker_ready, _start_exporter),
        (worker_ready, _join_pool),
        (worker_process_init, _limit_memory),
        (worker_process_init, _limit_threads),
        (worker_process_init, _count_process),
        (worker_shutdown, _stop_exporter),
        (worker_shutdown, _leave_pool),
        (worker_process_shutdown, _child_exit),
        (task_prerun, _task_started),
        (task_postrun, _task_finished),
        (task_failure, _task_failed),
    ):
        signal.connect(handler, weak=False, dispatch_uid=f"mlsp-{handler.__name__}")
