"""Health probes: liveness, readiness (database + broker) and a detailed report.

All three are unauthenticated: none makes a broker round trip that a burst of requests could
pile up on (the worker count comes from web/worker_count.py), and the report gives aggregates
only (no model ids) and is rate limited per client IP (RATE_LIMIT_HEALTH).
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app
from spectree import Response
from sqlalchemy import text

from shared.queue_depths import read_depths
from shared.schemas.common import ErrorResponse
from shared.schemas.health import Checks, Health, Liveness
from web import extensions
from web.errors import error_response
from web.extensions import db
from web.limits import health_limit, limit
from web.openapi import spec
from web.worker_count import WorkerCount

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)
_WORKER_COUNT = "mlsp_worker_count"


def _database_ok() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
        return True
    except Exception:  # any failure means "not ready"; the reason goes to the log
        log.warning("health: database check failed", exc_info=True)
        db.session.rollback()
        return False


def _broker_ok() -> bool:
    try:
        return bool(extensions.redis().ping())
    except Exception:
        log.warning("health: broker check failed", exc_info=True)
        return False


def dependencies_ok() -> bool:
    """The database and the broker both answer (readiness; also used by OIP v2)."""
    return _database_ok() and _broker_ok()


def _live_workers() -> dict[str, int]:
    """The last background count by host (web/worker_count.py): never a broker call in the
    request."""
    held = current_app.extensions
    if _WORKER_COUNT not in held:  # setdefault: one counter even if two race here
        held.setdefault(_WORKER_COUNT, WorkerCount(extensions.settings()))
    return held[_WORKER_COUNT].by_host()


def _queue_depths() -> dict[str, int]:
    """The Celery queue by name and the job ids pending in all models' lists (`pending`)."""
    queue = extensions.settings().default_queue
    try:
        depths = read_depths(extensions.redis(), [queue])
    except Exception:
        log.warning("health: queue depth read failed", exc_info=True)
        return {}
    return depths.celery | {"pending": depths.pending_total}


@bp.get("/live")
@spec.validate(resp=Response(HTTP_200=Liveness), tags=["health"])
def live():
    """The process serves requests."""
    return Liveness(status="ok")


@bp.get("/ready")
@spec.validate(resp=Response(HTTP_200=Liveness, HTTP_503=ErrorResponse), tags=["health"])
def ready():
    """Ready to take traffic: the database and the broker answer."""
    if _database_ok() and _broker_ok():
        return Liveness(status="ok")
    return _not_ready()


def _not_ready():
    return error_response(
        503, "not_ready", "Database or broker unavailable", headers={"Retry-After": "5"}
    )


@bp.get("")
@limit(health_limit)
@spec.validate(resp=Response(HTTP_200=Health, HTTP_503=Health), tags=["health"])
def health():
    """Database, broker, live workers (in all and per host) and queue depths."""
    checks = Checks(
        database="ok" if _database_ok() else "down",
        broker="ok" if _broker_ok() else "down",
        workers=0,
    )
    hosts = _live_workers() if checks.broker == "ok" else {}
    checks.workers = sum(hosts.values())
    up = checks.database == "ok" and checks.broker == "ok"
    status = ("ok" if checks.workers else "degraded") if up else "down"
    body = Health(status=status, checks=checks, queues=_queue_depths(), workers_by_host=hosts)
    return body, 200 if up else 503
