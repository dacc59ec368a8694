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
