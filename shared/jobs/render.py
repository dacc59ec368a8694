"""The job object of the API, rendered from a job row: the one rendering both tiers use (the web
tier for the jobs it reads, a worker for the sync predictions it answers directly)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from shared.jobs.table import Job
from shared.schemas.jobs import JobOut

TIMINGS = ("queue_ms", "inference_ms", "total_ms")


def job_object(row: Mapping[str, Any] | Job) -> dict[str, Any]:
    """The API's job object from a row (a dict keyed by column, or a loaded `Job`); columns a
    row does not have yet (a queued row has no result) render as null."""
    get = row.get if isinstance(row, Mapping) else lambda name: getattr(row, name, None)
    code = get("error_code")
    return {
        "id": get("id"),
        "model_id": get("model_id"),
        "model_version": get("model_version"),
        "status": get("status"),
        "result": get("result"),
        "error": {"code": code, "message": get("error_message") or ""} if code else None,
        "created_at": get("created_at"),
        "started_at": get("started_at"),
        "finished_at": get("finished_at"),
        "timings": {name: get(name) for name in TIMINGS},
        "cache_hit": get("cache_hit"),
        "runtime": get("runtime"),
        "attempts": get("attempts"),
        "route": get("route") or "explicit",
        "shadow_of": get("shadow_of"),
    }


def job_out(row: Mapping[str, Any] | Job) -> JobOut:
    return JobOut.model_validate(job_object(row))


def job_json(row: Mapping[str, Any]) -> bytes:
    """The job object as JSON: what a worker replies to the web tier waiting on a sync job."""
    return orjson.dumps(job_object(row), option=orjson.OPT_SERIALIZE_NUMPY)
