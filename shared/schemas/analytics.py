"""Schemas of a model's usage analytics (docs/api.md, "Analytics")."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class AnalyticsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    days: int = Field(
        7, ge=1, le=90, description="Window in UTC calendar days, today included (1..90)"
    )


class LatencyStats(BaseModel):
    """Milliseconds over the window's jobs that recorded this timing (null when none did)."""

    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    mean: float | None = None


class Latency(BaseModel):
    inference: LatencyStats
    queue: LatencyStats
    total: LatencyStats


class DailyBucket(BaseModel):
    date: date
    total: int
    failed: int
    mean_total_ms: float | None = None


class RecentFailure(BaseModel):
    """A failed job's error; its inputs are never included."""

    job_id: uuid.UUID
    at: datetime
    code: str | None = None
    message: str | None = None


class Analytics(BaseModel):
    model_id: uuid.UUID
    days: int
    since: datetime = Field(description="Start of the window (UTC midnight)")
    total: int
    by_status: dict[str, int] = Field(description="Jobs per status, every status listed")
    success_rate: float | None = Field(
        description="succeeded / (succeeded + failed + expired); null before any outcome"
    )
    rows_predicted: int = Field(description="Input rows of succeeded jobs")
    cache_hit_rate: float | None = Field(
        description="Share of jobs that ran on an already-loaded model"
    )
    latency_ms: Latency
    daily: list[DailyBucket] = Field(description="One bucket per UTC day, oldest first")
    recent_failures: list[RecentFailure] = Field(description="Up to 10, newest first")
