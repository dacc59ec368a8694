"""Health endpoint schemas."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Liveness(BaseModel):
    status: Literal["ok"]


class Checks(BaseModel):
    database: Literal["ok", "down"]
    broker: Literal["ok", "down"]
    workers: int


class Health(BaseModel):
    status: Literal["ok", "degraded", "down"]
    checks: Checks
    queues: dict[str, int]
    # Live workers per host (the host part of each Celery node name, `worker@%h`): on several
    # hosts, which one lost its workers.
    workers_by_host: dict[str, int] = {}
